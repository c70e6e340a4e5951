package parallel

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestForRunsEveryItemWithinTheLimit(t *testing.T) {
	var running, peak, done atomic.Int64
	err := For(context.Background(), 3, 100, func(ctx context.Context, i int) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		done.Add(1)
		running.Add(-1)
		return nil
	})
	if err != nil || done.Load() != 100 || peak.Load() > 3 {
		t.Fatalf("err %v, done %d, peak %d", err, done.Load(), peak.Load())
	}
}

func TestForStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	var done atomic.Int64
	err := For(context.Background(), 1, 100, func(ctx context.Context, i int) error {
		done.Add(1)
		if i == 5 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || done.Load() != 6 {
		t.Fatalf("err %v after %d items", err, done.Load())
	}
}
