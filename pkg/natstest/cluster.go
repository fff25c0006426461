package natstest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/streams"
)

// ClusterReplicas is the replica count of every stream and bucket on a
// Cluster: each lives on all three nodes.
const ClusterReplicas = 3

// Cluster is three embedded servers on loopback, routed to each other, with
// JetStream clustered over them: a test stops and starts any node, on its
// ports and storage, as an operator restarting a machine would.
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes [3]*clusterNode
}

type clusterNode struct {
	name, dir         string
	port, clusterPort int
	srv               *natsembed.Server // nil while stopped
	routes            []string
}

// StartCluster starts the three nodes, waits for a JetStream meta leader
// that sees all three and provisions every upshift stream with three
// replicas.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := NewCluster(t)
	c.StartNodes(0, 1, 2)
	c.WaitMetaLeader()
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	if err := streams.Ensure(ctx, js, c.Streams(), streams.All...); err != nil {
		t.Fatal(err)
	}
	return c
}

// NewCluster configures the three nodes, on free ports and storage of
// their own, and starts none: a test of a cluster forming starts them with
// StartNodes.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	ports := freePorts(t, 6)
	var routes []string
	for i := range c.nodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+i]))
	}
	dir := t.TempDir()
	for i := range c.nodes {
		c.nodes[i] = &clusterNode{name: fmt.Sprintf("n%d", i), dir: filepath.Join(dir, fmt.Sprintf("n%d", i)),
			port: ports[i], clusterPort: ports[3+i], routes: routes}
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, n := range c.nodes {
			if n.srv != nil {
				n.srv.Stop()
			}
		}
	})
	return c
}

// StartNodes starts the nodes given that are not running, together (each
// waits for the others' routes to form its JetStream cluster); it does not
// wait for the cluster to form (WaitMetaLeader does).
func (c *Cluster) StartNodes(idx ...int) {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(idx))
	c.mu.Lock()
	for k, i := range idx {
		if n := c.nodes[i]; n.srv == nil {
			wg.Go(func() { n.srv, errs[k] = n.start() })
		}
	}
	wg.Wait()
	c.mu.Unlock()
	for _, err := range errs {
		if err != nil {
			c.t.Fatal(err)
		}
	}
}

func (n *clusterNode) start() (*natsembed.Server, error) {
	return natsembed.Start(natsembed.Options{Dir: n.dir, Name: n.name, Port: n.port, Configure: func(o *server.Options) {
		o.Cluster = server.ClusterOpts{Name: "upshift-test", Host: "127.0.0.1", Port: n.clusterPort}
		o.Routes = server.RoutesFromStr(strings.Join(n.routes, ","))
	}})
}

// freePorts returns n ports free at the time of asking, all different.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// Streams is the provisioning configuration of a cluster: three replicas.
func (c *Cluster) Streams() streams.Config { return streams.Config{Replicas: ClusterReplicas} }

// URLs lists the three nodes' client URLs, comma separated, as a service's
// --nats-url takes them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.port))
	}
	return strings.Join(urls, ",")
}

// Connect opens a connection to the cluster that reconnects for ever, to
// any node, as a service's does.
func (c *Cluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.Name(t.Name()), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Node returns the index of the node named name (as stream info names a
// leader), -1 if none is.
func (c *Cluster) Node(name string) int {
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

// Leader returns the index of the node leading stream's replicas.
func (c *Cluster) Leader(js jetstream.JetStream, stream string) int {
	c.t.Helper()
	var leader int
	// Elections after a node's return took over 30 s under load here.
	Eventually(c.t, 4*Patience, stream+" to have a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		leader = c.Node(info.Cluster.Leader)
		return leader >= 0
	})
	return leader
}

// Server returns node i's running server (nil while it is stopped), for a
// client that must talk to that node alone (natstest.Connect).
func (c *Cluster) Server(i int) *natsembed.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Stop stops node i; its storage stays.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[i]; n.srv != nil {
		n.srv.Stop()
		n.srv = nil
	}
}

// Start starts node i again on its ports and storage, and waits until it is
// healthy as an operator's rolling restart waits for it (the server's
// /healthz): its meta layer current, and every stream and consumer replica
// it holds caught up with its leader. A node stopped before that leaves a
// replica group with one current member and no quorum, which is losing two
// nodes, not one.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	c.StartNodes(i)
	c.WaitMetaLeader()
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.mu.Unlock()
	// Catching up the replicas of every stream and consumer takes longer
	// than the meta layer under load.
	for deadline := time.Now().Add(4 * Patience); ; time.Sleep(100 * time.Millisecond) {
		h := srv.Healthz(nil)
		if h.Status == "ok" && h.Error == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not healthy %s after its start: %s", c.nodes[i].name, 4*Patience, h.Error)
		}
	}
}

// WaitMetaLeader waits for a JetStream meta leader that counts every
// running node, and no other, as an online peer: until a node started
// is counted, no replica is placed on it, and a stream of three replicas
// is refused ("no suitable peers for placement").
func (c *Cluster) WaitMetaLeader() {
	c.t.Helper()
	Eventually(c.t, Patience, "a JetStream meta leader seeing every running node", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		running := 0
		for _, n := range c.nodes {
			if n.srv != nil {
				running++
			}
		}
		for _, n := range c.nodes {
			if n.srv != nil && n.srv.JetStreamIsLeader() {
				return len(n.srv.JetStreamClusterPeers()) == running
			}
		}
		return false
	})
}
