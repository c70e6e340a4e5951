package index

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/trailkeeper/trailkeeper/internal/query"
	"github.com/trailkeeper/trailkeeper/internal/search"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// DefaultDir is the index's folder in the user's cache directory, named
// after the archive: s3-BUCKET[-PREFIX], or dir-NAME-HASH of the path.
func DefaultDir(s store.Store, root string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the index: %v", err)
	}
	var name string
	if !strings.HasPrefix(s.String(), "s3://") { // a local copy: named after its path
		abs, _ := filepath.Abs(s.String())
		sum := sha256.Sum256([]byte(abs))
		name = "dir-" + filepath.Base(abs) + "-" + hex.EncodeToString(sum[:4])
	} else {
		name = "s3-" + strings.TrimPrefix(s.String(), "s3://")
		if root != "" {
			name += "-" + root
		}
	}
	return filepath.Join(cache, "trailkeeper", "index", strings.Trim(unsafeName.ReplaceAllString(name, "_"), "_")), nil
}

// Count counts from the index when it holds every object the search
// would read, in the version listed now. When it cannot, the listing it made
// (if any) saves the search from listing again.
func Count(ctx context.Context, s store.Store, root string, f search.Filter) (n int64, dir string, l *search.Listing, ok bool) {
	dir, err := DefaultDir(s, root)
	if err != nil {
		return 0, "", nil, false
	}
	sql, ok := CountSQL(f)
	if _, err := os.Stat(dir); err != nil || !ok {
		return 0, "", nil, false
	}
	l, err = search.List(ctx, s, search.Options{Root: root, Filter: f})
	if err != nil {
		return 0, "", nil, false
	}
	if !Holds(dir, l.Versions()) {
		return 0, "", l, false
	}
	db, err := query.Open(ctx, dir, Scope(f))
	if err != nil {
		return 0, "", l, false
	}
	defer db.Close()
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return 0, "", l, false
	}
	defer rows.Close()
	row, err := rows.Next()
	if err != nil || row == nil {
		return 0, "", l, false
	}
	n, ok = row[0].(int64)
	return n, dir, l, ok
}
