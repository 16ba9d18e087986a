package store

import (
	"crypto/tls"
	"strings"
)

// Info describes an open store for logs and status pages. It never holds a
// password.
type Info struct {
	// Topology is the layout: single, sentinel or cluster.
	Topology Topology
	// Embedded is true for the in-process store.
	Embedded bool
	// Hosts are the addresses dialled first: the node, the Sentinels, or the
	// cluster nodes given (the rest of a cluster is discovered).
	Hosts []string
	// Master is the master name the Sentinels are asked for ("" unless
	// Sentinel).
	Master string
	// TLS is true when connections use TLS; ClientCert when they present a
	// client certificate too.
	TLS, ClientCert bool
}

// Kind is the topology as a log shows it: "embedded", "single", "sentinel"
// or "cluster".
func (i Info) Kind() string {
	if i.Embedded {
		return "embedded"
	}
	return i.Topology.String()
}

// String is a one-line summary, e.g. "sentinel mymaster@h1:26379,h2:26379 tls".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Kind())
	b.WriteByte(' ')
	if i.Master != "" {
		b.WriteString(i.Master + "@")
	}
	b.WriteString(strings.Join(i.Hosts, ","))
	switch {
	case i.ClientCert:
		b.WriteString(" tls+client-cert")
	case i.TLS:
		b.WriteString(" tls")
	}
	return b.String()
}

// Info describes the store.
func (s *Store) Info() Info { return s.info }

// describe builds the Info of a parsed URL.
func (t target) describe() Info {
	i := Info{Topology: t.topology}
	var tc *tls.Config
	switch {
	case t.failover != nil:
		i.Hosts, i.Master, tc = t.failover.SentinelAddrs, t.failover.MasterName, t.failover.TLSConfig
	case t.cluster != nil:
		i.Hosts, tc = t.cluster.Addrs, t.cluster.TLSConfig
	case t.single != nil:
		i.Hosts, tc = []string{t.single.Addr}, t.single.TLSConfig
	}
	i.Hosts = append([]string(nil), i.Hosts...)
	i.TLS = tc != nil
	i.ClientCert = tc != nil && (len(tc.Certificates) > 0 || tc.GetClientCertificate != nil)
	return i
}
