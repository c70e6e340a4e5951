package setup

import (
	"context"
	"sync"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
)

// Connecting: the clients of every account, each checked to act in the
// account the config names. Observing is discover.go, desiring desired.go,
// planning plan.go (the archive policy's arithmetic policyplan.go), applying
// apply.go and ops.go.

// Env holds the clients of every account of a config.
type Env struct {
	Config  *config.Config
	Archive *awsapi.Clients
	Sources map[string]*awsapi.Clients
}

// Connect builds clients for the archive and the given sources and checks, in
// parallel, that each credential acts in the account the config names.
func Connect(ctx context.Context, c *config.Config, sources []config.Source, parallel int) (*Env, error) {
	// Target 0 is the archive, then the sources in order.
	targets := []awsapi.Target{{Account: c.Archive.AccountID, Region: c.Archive.Region, Credentials: c.Archive.Credentials, Endpoint: c.EndpointURL}}
	for _, s := range sources {
		targets = append(targets, awsapi.Target{Account: s.AccountID, Region: s.Region, Credentials: s.Credentials, Endpoint: c.EndpointURL})
	}
	clients := make([]*awsapi.Clients, len(targets))
	var loader awsapi.Loader
	err := forEach(ctx, parallel, len(targets), func(ctx context.Context, i int) error {
		cl, err := loader.New(ctx, targets[i])
		if err != nil {
			return err
		}
		clients[i] = cl
		return cl.CheckIdentity(ctx, awsapi.Describe(targets[i].Credentials))
	})
	e := &Env{Config: c, Archive: clients[0], Sources: map[string]*awsapi.Clients{}}
	for _, cl := range clients[1:] {
		if cl != nil {
			e.Sources[cl.Account] = cl
		}
	}
	return e, err
}

// forEach runs fn for 0..n-1 with at most parallel at once and returns the
// errors of all that failed, so that one bad account does not hide another.
func forEach(ctx context.Context, parallel, n int, fn func(ctx context.Context, i int) error) error {
	if parallel < 1 {
		parallel = 8
	}
	sem := make(chan struct{}, parallel)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			errs[i] = fn(ctx, i)
		}()
	}
	wg.Wait()
	return joinErrors(errs)
}
