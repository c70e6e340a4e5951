// Package parallel runs work on a bounded number of goroutines.
package parallel

import (
	"context"
	"sync"
	"sync/atomic"
)

// For runs fn for 0..n-1 on at most limit goroutines, which live for the
// whole loop (deep call stacks, such as the AWS SDK's, grow once per
// goroutine, not once per item). It stops at the first error and returns it.
func For(ctx context.Context, limit, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(limit, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
