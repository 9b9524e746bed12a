package metadata

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with "equal jitter": before retry n the
// delay is drawn from [c/2, c) with c = min(max, base·2ⁿ), so retries spread
// out across a fleet but never come back at once. (The SDK's own jitter
// backoff degenerates to a constant delay when its maximum is 1s, the IMDS
// client's cap.)
type backoff struct {
	base, max time.Duration
}

const backoffBase = 100 * time.Millisecond

func (b backoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	c := b.max
	if attempt < 16 && b.base<<attempt < b.max {
		c = b.base << attempt
	}
	half := c / 2
	return half + rand.N(c-half), nil
}
