package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClusterServesEverySlotOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Redis Cluster")
	}
	c := NewCluster(t, 3)
	rdb := ClusterClient(t, c)
	ctx := context.Background()
	for i := range 300 {
		if err := rdb.Set(ctx, fmt.Sprint("k", i), i, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for _, n := range c.Nodes() {
		size, err := Client(t, n).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if size == 0 {
			t.Errorf("node %s holds no keys", n.Addr())
		}
		total += int(size)
	}
	if total != 300 {
		t.Errorf("nodes hold %d keys, want 300", total)
	}
}

func TestSentinelFailoverPromotesTheReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis with Sentinels and fails over")
	}
	s := NewSentinel(t, "tmaster", 2)
	if addr, err := s.MasterAddr(); err != nil || addr != s.Master().Addr() {
		t.Fatalf("master = %q, %v; want %s", addr, err, s.Master().Addr())
	}
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.Name(), SentinelAddrs: s.SentinelAddrs()})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	addr, err := s.Failover(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if addr != s.Replica().Addr() {
		t.Fatalf("new master %s, want the replica %s", addr, s.Replica().Addr())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Set(ctx, "k", "w", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes after failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
