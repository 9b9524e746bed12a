package roles_test

import (
	"testing"

	"github.com/nodeagent/nodeagent/roles"
)

const gib = 1 << 30

func TestPHPMaxChildren(t *testing.T) {
	tests := []struct {
		name     string
		mem      int64
		products int
		want     int
	}{
		{"unknown memory uses the 256 MiB floor", 0, 1, 4},
		{"512 MiB machine", gib / 2, 1, 4},
		{"1 GiB", gib, 1, 8},
		{"2 GiB two products", 2 * gib, 2, 12},
		{"4 GiB", 4 * gib, 1, 56},
		{"8 GiB", 8 * gib, 1, 120},
		{"tiny share clamps to 2", gib, 8, 2},
		{"64 GiB clamps to 256", 64 * gib, 1, 256},
		{"zero products counts as one", 4 * gib, 0, 56},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roles.PHPMaxChildren(tt.mem, tt.products); got != tt.want {
				t.Errorf("PHPMaxChildren(%d MiB, %d) = %d, want %d", tt.mem/roles.MiB, tt.products, got, tt.want)
			}
		})
	}
}

func TestPHPServers(t *testing.T) {
	tests := []struct {
		name              string
		maxChildren       int
		start, minS, maxS int
	}{
		{"one child", 1, 1, 1, 1},
		{"two children", 2, 1, 1, 2},
		{"twelve", 12, 2, 1, 3},
		{"forty", 40, 7, 5, 10},
		{"256", 256, 48, 32, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, minS, maxS := roles.PHPServers(tt.maxChildren)
			if start != tt.start || minS != tt.minS || maxS != tt.maxS {
				t.Errorf("PHPServers(%d) = %d, %d, %d; want %d, %d, %d", tt.maxChildren, start, minS, maxS, tt.start, tt.minS, tt.maxS)
			}
		})
	}
	// PHP-FPM refuses a pool unless 1 <= min <= start <= max <= max_children.
	for n := 1; n <= 1000; n++ {
		start, minS, maxS := roles.PHPServers(n)
		if !(1 <= minS && minS <= start && start <= maxS && maxS <= n) {
			t.Fatalf("PHPServers(%d) = start %d, min %d, max %d: php-fpm would refuse it", n, start, minS, maxS)
		}
	}
}

func TestApacheMaxRequestWorkers(t *testing.T) {
	tests := []struct {
		name string
		mem  int64
		want int
	}{
		{"unknown memory", 0, 50},
		{"1 GiB floor", gib, 50},
		{"2 GiB", 2 * gib, 125},
		{"4 GiB", 4 * gib, 250},
		{"8 GiB", 8 * gib, 500},
		{"32 GiB cap", 32 * gib, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := roles.ApacheMaxRequestWorkers(tt.mem)
			if got != tt.want {
				t.Errorf("ApacheMaxRequestWorkers(%d MiB) = %d, want %d", tt.mem/roles.MiB, got, tt.want)
			}
			if got%roles.ThreadsPerChild != 0 {
				t.Errorf("%d is not a multiple of ThreadsPerChild", got)
			}
		})
	}
}

func TestMemcachedMemoryMB(t *testing.T) {
	tests := []struct {
		name    string
		mem     int64
		alsoWeb bool
		want    int
	}{
		{"cache-only 2 GiB", 2 * gib, false, 1254},
		{"cache-only 4 GiB", 4 * gib, false, 2688},
		{"cache-only 256 MiB floor", gib / 4, false, 64},
		{"shared 4 GiB", 4 * gib, true, 1024},
		{"shared 128 MiB floor", gib / 8, true, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roles.MemcachedMemoryMB(tt.mem, tt.alsoWeb); got != tt.want {
				t.Errorf("MemcachedMemoryMB(%d MiB, %v) = %d, want %d", tt.mem/roles.MiB, tt.alsoWeb, got, tt.want)
			}
		})
	}
}
