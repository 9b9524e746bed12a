package roles

// MiB is one mebibyte in bytes.
const MiB = 1 << 20

// Apache worker threads per child process (event and worker MPMs).
const ThreadsPerChild = 25

// PHPMaxRequests recycles a PHP worker after this many requests, bounding
// the damage of a slow leak in application code.
const PHPMaxRequests = 500

// PHPMaxChildren sizes pm.max_children of each of a node's products' pools
// from memBytes, the memory left to the web tier (the machine's memory
// minus memcached's share when the node also runs memcached):
//
//	usable       = max(memBytes - 512 MiB, 256 MiB)   512 MiB for the OS and Apache
//	per product  = usable / products
//	max_children = clamp(per product / 64 MiB, 2, 256) 64 MiB per PHP worker
//
// A product's php.max_children in the document wins over this.
func PHPMaxChildren(memBytes int64, products int) int {
	usable := max(memBytes-512*MiB, 256*MiB)
	per := usable / int64(max(products, 1))
	return int(clamp(per/(64*MiB), 2, 256))
}

// PHPServers derives the dynamic process manager's spare servers from
// pm.max_children: min_spare = max(max_children/8, 1), max_spare =
// max(max_children/4, min_spare+1) but at most max_children, and
// start_servers = min_spare + (max_spare-min_spare)/2 (PHP-FPM's own
// default). They always satisfy PHP-FPM's rule
// min_spare <= start <= max_spare <= max_children.
func PHPServers(maxChildren int) (start, minSpare, maxSpare int) {
	minSpare = max(maxChildren/8, 1)
	maxSpare = min(max(maxChildren/4, minSpare+1), maxChildren)
	minSpare = min(minSpare, maxSpare)
	return minSpare + (maxSpare-minSpare)/2, minSpare, maxSpare
}

// ApacheMaxRequestWorkers sizes MaxRequestWorkers (event MPM) from the
// machine's memory: one worker thread per 16 MiB, rounded down to a
// multiple of ThreadsPerChild (25) and clamped to 50-1000. ServerLimit is
// MaxRequestWorkers / 25. Threads are cheap; PHP runs in PHP-FPM, whose
// pools bound the real concurrency. The document's
// apache.max_request_workers wins over this (rounded up to a multiple of
// 25, since Apache would otherwise round it down itself).
func ApacheMaxRequestWorkers(memBytes int64) int {
	n := memBytes / (16 * MiB)
	n -= n % ThreadsPerChild
	return int(clamp(n, 50, 1000))
}

// MemcachedMemoryMB sizes memcached's cache (-m, in MiB) from the
// machine's memory:
//
//	cache-only node:  70% of (memory - 256 MiB), at least 64
//	shared with web:  25% of memory, at least 64
//
// The 256 MiB and the other 30% leave room for the OS, memcached's own
// per-connection and hash table overhead, and the page cache. The role's
// memcached.memory_mb in the document wins over this.
func MemcachedMemoryMB(memBytes int64, alsoWeb bool) int {
	mb := memBytes / MiB
	if alsoWeb {
		mb = mb * 25 / 100
	} else {
		mb = (mb - 256) * 70 / 100
	}
	return int(max(mb, 64))
}

func clamp(v, lo, hi int64) int64 { return min(max(v, lo), hi) }
