package metadata_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/nodeagent/nodeagent/metadata"
)

// BenchmarkDiscoveryReads is an apply's three IMDS reads as a fresh
// process makes them: a new client, the token, the identity document, then
// two values at once, over new loopback connections (closed after each
// round), through the SDK's imds client and through Client.
func BenchmarkDiscoveryReads(b *testing.B) {
	f := newFakeIMDS(b, fullValues())
	for _, impl := range []struct {
		name string
		new  func(o metadata.Options) reader
	}{
		{"sdk", func(o metadata.Options) reader { return newSDKReader(o.Endpoint, o) }},
		{"ours", func(o metadata.Options) reader {
			c, err := metadata.NewClient(o)
			if err != nil {
				b.Fatal(err)
			}
			return ourReader{c}
		}},
	} {
		b.Run(impl.name, func(b *testing.B) {
			var mu sync.Mutex
			var conns []net.Conn
			d := &net.Dialer{}
			dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
				return c, err
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				r := impl.new(metadata.Options{Endpoint: f.URL, Attempts: 1, CallTimeout: metadata.DefaultCallTimeout, DialContext: dial})
				if _, err := r.dynamic(ctx, "instance-identity/document"); err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				for _, p := range []string{metadata.PathGroupTag, metadata.PathLifecycleState} {
					wg.Go(func() {
						if _, err := r.meta(ctx, p); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				conns = conns[:0]
				mu.Unlock()
				f.requests()
			}
		})
	}
}
