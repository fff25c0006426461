package natsembed

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartCluster starts n servers on loopback, on ports chosen by the
// kernel, routed to each other, with JetStream clustered over them and each
// node's storage in dir/n<i>; it returns once the cluster has a JetStream
// meta leader. A program's own cluster (the soak's); tests use
// natstest.StartCluster, which can also stop and restart a node.
func StartCluster(dir string, n int) ([]*Server, error) {
	if n < 3 {
		return nil, errors.New("natsembed: a JetStream cluster needs at least three nodes")
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	// Together: each node waits for the others' routes to form its
	// JetStream cluster.
	for i := range nodes {
		wg.Go(func() {
			nodes[i], errs[i] = Start(Options{Dir: filepath.Join(dir, fmt.Sprintf("n%d", i)), Name: fmt.Sprintf("n%d", i),
				Configure: func(o *server.Options) {
					o.Cluster = server.ClusterOpts{Name: "upshift", Host: "127.0.0.1", Port: ports[i]}
					o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
				}})
		})
	}
	wg.Wait()
	stop := func() {
		for _, s := range nodes {
			if s != nil {
				s.Stop()
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		stop()
		return nil, err
	}
	// Ready once a meta leader knows every node as a current peer: a
	// replicated stream created before is refused for want of peers.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, s := range nodes {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return nodes, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("natsembed: the JetStream cluster not formed after 30s")
		}
	}
}

// URLs are the client URLs of servers, comma separated, as a service's
// --nats-url takes them.
func URLs(servers []*Server) string {
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.URL())
	}
	return strings.Join(urls, ",")
}

// freePorts returns n ports free at the time of asking, all different.
func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("natsembed: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
