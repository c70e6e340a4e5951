package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// logs hashes every referenced log file (every version of it, when there are
// several, to tell the replica from what was written over it) and reports log
// files that no digest lists.
func (v *verifier) logs(ctx context.Context, f *folder, referenced map[string]*logRef, covered []window) error {
	keys := make([]string, 0, len(referenced))
	for k := range referenced {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	v.total.Add(int64(len(keys)))
	err := parallel(ctx, v.opts.Parallel, len(keys), func(ctx context.Context, i int) error {
		defer v.tick(1)
		key := keys[i]
		ref := referenced[key]
		versions := f.logs[key]
		report := func(kind, version, format string, a ...any) {
			v.add(v.finding(Error, kind, f, ref.chain.Trail, key, version, format, a...))
			v.mu.Lock()
			ref.chain.Problems++
			v.mu.Unlock()
		}
		var live []store.Version
		for _, ver := range versions {
			if ver.DeleteMarker {
				if ver.Latest {
					report(DeleteMarker, ver.VersionID, "a delete marker hides this log file; its versions are checked below")
				}
				continue
			}
			live = append(live, ver)
		}
		if len(live) == 0 {
			report(MissingLog, "", "missing: listed in %s", ref.digest)
			return nil
		}
		if !v.sampled(key) {
			v.mu.Lock()
			ref.chain.LogsSkipped++
			v.mu.Unlock()
			return nil
		}
		match := -1 // index in live of the version whose hash the digest lists
		var hashes []string
		for _, ver := range live {
			h, err := v.hash(ctx, key, ver.VersionID)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					report(MissingLog, ver.VersionID, "listed but cannot be read")
					return nil
				}
				var unreadable *unreadableError
				if !errors.As(err, &unreadable) {
					return err
				}
				h = "unreadable: " + err.Error()
			}
			hashes = append(hashes, h)
			if h == ref.hash && match < 0 {
				match = len(hashes) - 1
			}
		}
		switch {
		case match < 0 && len(live) == 1:
			report(AlteredLog, live[0].VersionID, "its SHA-256 differs from the hash in %s: the log was altered (%s)", ref.digest, hashes[0])
		case match < 0:
			report(AlteredLog, "", "none of its %d versions matches the hash in %s", len(live), ref.digest)
		default:
			for i, ver := range live {
				if i != match {
					report(ShadowingVersion, ver.VersionID, "a version written over the replica (%s); the replica, version %s, is intact", hashes[i], live[match].VersionID)
				}
			}
			v.mu.Lock()
			ref.chain.LogsValid++
			v.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Log files that no digest lists, delivered while the chains were running.
	for key := range f.logs {
		if _, ok := referenced[key]; ok {
			continue
		}
		k, err := ct.ParseKey(key)
		if err != nil || k.Kind != ct.Log || !v.inRange(k.Time) {
			continue
		}
		for _, w := range covered {
			if !k.Time.Before(w.from) && k.Time.Add(time.Minute).Before(w.to) {
				v.add(v.finding(Error, UnreferencedLog, f, "", key, "", "no digest lists this log file, delivered at %s while digests were being written: inserted, or its digest is missing", k.Time.Format("15:04Z")))
				break
			}
		}
	}
	return nil
}

type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return e.err.Error() }

func (v *verifier) hash(ctx context.Context, key, version string) (string, error) {
	r, _, err := v.s.Open(ctx, key, version)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h, _, err := ct.HashLog(r)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &unreadableError{fmt.Errorf("%w", err)}
	}
	return h, nil
}
