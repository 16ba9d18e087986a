package store

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// target is what a store URL names: the topology and its client options.
type target struct {
	topology Topology
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// schemes lists the URL schemes Open understands, for error messages.
const schemes = "redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://"

// parseURL reads a store URL (see Open). Its errors name the part of the URL
// that is wrong and never repeat the password.
func parseURL(raw string) (target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return target{}, fmt.Errorf("redis url: want %s followed by host:port", schemes)
	}
	var t target
	tlsOn := false
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return target{}, fmt.Errorf("redis url: %w", err)
		}
		t.single = o
		return t, nil
	case "redis+sentinel":
		t.topology = Sentinel
	case "rediss+sentinel":
		t.topology, tlsOn = Sentinel, true
	case "redis+cluster":
		t.topology = Cluster
	case "rediss+cluster":
		t.topology, tlsOn = Cluster, true
	default:
		return target{}, fmt.Errorf("redis url: unknown scheme %q: want %s", scheme, schemes)
	}
	name := strings.ToLower(scheme) + "://"

	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return target{}, fmt.Errorf("redis url: %s takes no #fragment", name)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	var user, pass string
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		var err error
		if user, pass, err = userinfo(authority[:i]); err != nil {
			return target{}, fmt.Errorf("redis url: %s user:password: %w", name, err)
		}
		authority = authority[i+1:]
	}
	defPort := "6379"
	if t.topology == Sentinel {
		defPort = "26379"
	}
	addrs, err := hostList(authority, defPort)
	if err != nil {
		return target{}, fmt.Errorf("redis url: %s hosts: %w", name, err)
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return target{}, fmt.Errorf("redis url: %s query: %w", name, err)
	}
	var tlsConfig *tls.Config
	if tlsOn {
		// No ServerName: each node is checked against the host it is dialled
		// by, which differs from node to node.
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}

	if t.topology == Cluster {
		if path != "" {
			return target{}, fmt.Errorf("redis url: %s takes no path (got /%s): a cluster has no master name and only database 0", name, path)
		}
		for k := range query {
			return target{}, fmt.Errorf("redis url: %s takes no query parameter, got %q", name, k)
		}
		t.cluster = &redis.ClusterOptions{Addrs: addrs, Username: user, Password: pass, TLSConfig: tlsConfig}
		return t, nil
	}

	master, err := url.PathUnescape(path)
	switch {
	case err != nil:
		return target{}, fmt.Errorf("redis url: %s master name: %w", name, err)
	case master == "":
		return target{}, fmt.Errorf("redis url: %s needs the master name as its path: %shost:port[,host:port...]/<master-name>", name, name)
	case strings.Contains(master, "/"):
		return target{}, fmt.Errorf("redis url: %s path must be just the master name, got %q (the database goes in ?db=N)", name, master)
	}
	o := &redis.FailoverOptions{
		MasterName: master, SentinelAddrs: addrs, Username: user, Password: pass, TLSConfig: tlsConfig,
	}
	for k, vs := range query {
		if len(vs) != 1 {
			return target{}, fmt.Errorf("redis url: %s query parameter %q given %d times", name, k, len(vs))
		}
		v := vs[0]
		switch k {
		case "db":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return target{}, fmt.Errorf("redis url: %s db=%q: want a database number >= 0", name, v)
			}
			o.DB = n
		case "sentinel_username":
			o.SentinelUsername = v
		case "sentinel_password":
			o.SentinelPassword = v
		default:
			return target{}, fmt.Errorf("redis url: %s unknown query parameter %q (known: db, sentinel_username, sentinel_password)", name, k)
		}
	}
	t.failover = o
	return t, nil
}

// userinfo splits and unescapes "user:password" (either may be empty).
func userinfo(s string) (user, pass string, err error) {
	u, p, _ := strings.Cut(s, ":")
	if user, err = url.PathUnescape(u); err != nil {
		return "", "", errors.New("bad %-escape in the user name")
	}
	if pass, err = url.PathUnescape(p); err != nil {
		return "", "", errors.New("bad %-escape in the password")
	}
	return user, pass, nil
}

// hostList splits "host:port,host:port" and checks each address; a host
// without a port gets defPort.
func hostList(s, defPort string) ([]string, error) {
	if s == "" {
		return nil, errors.New("none given: want host:port[,host:port...]")
	}
	parts := strings.Split(s, ",")
	addrs := make([]string, 0, len(parts))
	for _, a := range parts {
		if a == "" {
			return nil, fmt.Errorf("empty entry in %q", s)
		}
		host, port := a, defPort
		if strings.HasPrefix(a, "[") || strings.Count(a, ":") == 1 {
			// host:port or [v6] or [v6]:port
			if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
				host = a[1 : len(a)-1]
			} else {
				var err error
				if host, port, err = net.SplitHostPort(a); err != nil {
					return nil, fmt.Errorf("%q: %w", a, err)
				}
			}
		}
		if host == "" {
			return nil, fmt.Errorf("%q: empty host", a)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port %q is not a number from 1 to 65535", a, port)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, nil
}
