// Package archive finds the archive a command reads: the config's archive
// bucket, s3://bucket[/prefix], or a local copy made with 'aws s3 sync', and
// the clients to reach AWS with.
package archive

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Access is an archive to read.
type Access struct {
	Store   store.Store
	Root    string          // the prefix under which AWSLogs/ is looked for
	Config  *config.Config  // nil when there is no config file and a location was given
	Clients *awsapi.Clients // nil for a local copy without a config
}

// LocationError is a location that names no archive.
type LocationError struct {
	Msg, Hint string
}

func (e *LocationError) Error() string { return e.Msg }

// Open resolves location ("" for the config's archive) to an archive. The
// config at configPath is read when it exists, or when no location is
// given; its archive credentials then reach AWS, checked to act in the
// account the config names.
func Open(ctx context.Context, configPath, location string) (*Access, error) {
	a := &Access{}
	if _, err := os.Stat(configPath); err == nil || location == "" {
		c, err := config.Load(configPath)
		if err != nil {
			return nil, err
		}
		a.Config = c
	}
	target := awsapi.Target{Region: os.Getenv("AWS_REGION")}
	if target.Region == "" {
		target.Region = "us-east-1"
	}
	if c := a.Config; c != nil {
		target = awsapi.Target{Account: c.Archive.AccountID, Region: c.Archive.Region, Credentials: c.Archive.Credentials, Endpoint: c.EndpointURL}
	}
	connect := func() (*awsapi.Clients, error) {
		cl, err := awsapi.New(ctx, target)
		if err == nil && a.Config != nil {
			// Before reading the archive: is this the account the config names?
			// A wrong profile would otherwise end in a bare AccessDenied.
			err = cl.CheckIdentity(ctx, awsapi.Describe(a.Config.Archive.Credentials))
		}
		return cl, err
	}
	var err error
	switch {
	case location == "":
		if a.Clients, err = connect(); err != nil {
			return nil, err
		}
		a.Store = store.S3{Client: a.Clients.S3, Bucket: a.Config.Archive.Bucket}
		return a, nil
	case strings.HasPrefix(location, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(location, "s3://"), "/")
		if bucket == "" {
			return nil, &LocationError{Msg: fmt.Sprintf("%q names no bucket", location), Hint: "write s3://bucket or s3://bucket/prefix"}
		}
		if a.Clients, err = connect(); err != nil {
			return nil, err
		}
		a.Store, a.Root = store.S3{Client: a.Clients.S3, Bucket: bucket}, prefix
		return a, nil
	}
	if st, err := os.Stat(location); err != nil || !st.IsDir() {
		return nil, &LocationError{Msg: location + " is not a directory", Hint: "give the archive as s3://bucket, or a directory made with 'aws s3 sync'"}
	}
	if a.Config != nil {
		a.Clients, _ = connect()
	}
	a.Store = store.Dir{Root: location}
	return a, nil
}
