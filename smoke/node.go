package smoke

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"github.com/nodeagent/nodeagent"
)

// MemcachedCheckName is the name of the node's memcached check.
const MemcachedCheckName = "memcached"

// ForNode builds the node's checks from what it should be: for each product,
// every smoke check of the topology (status default 200) and the PHP probe,
// through the local Apache (d.Local.HTTP) with the product's ServerName as
// Host; and, when the node runs memcached, the memcached check against
// d.Local.Memcached. Check names are "<product>/<check>",
// "<product>/php-probe" and "memcached".
func ForNode(d *nodeagent.Desired, c *http.Client) []Check {
	apacheURL, memcachedAddr := d.Local.HTTP, d.Local.Memcached
	var checks []Check
	for _, p := range d.Products {
		for _, sc := range p.Smoke {
			checks = append(checks, &HTTPCheck{
				CheckName:  p.Name + "/" + sc.Name,
				BaseURL:    apacheURL,
				Host:       p.ServerName,
				Path:       sc.Path,
				Status:     cmp.Or(sc.Status, DefaultStatus),
				Contains:   sc.Contains,
				Location:   sc.Location,
				MaxLatency: time.Duration(sc.MaxLatencyMS) * time.Millisecond,
				Client:     c,
			})
		}
		checks = append(checks, PHPProbe(p.Name+"/php-probe", apacheURL, p.ServerName, c))
	}
	if slices.ContainsFunc(d.Services, func(s nodeagent.Service) bool {
		return s.Name == nodeagent.ServiceMemcached
	}) {
		checks = append(checks, &MemcachedCheck{CheckName: MemcachedCheckName, Addr: memcachedAddr})
	}
	return checks
}
