package index

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // the database/sql driver "duckdb"

	"github.com/trailkeeper/trailkeeper/internal/query"
)

// Compaction merges the files a month folder gathers over many runs (a daily
// run adds one to every account, region and month it touches) into one, so
// that queries open few files. It is crash-safe in three steps:
//
//  1. DuckDB writes the merged file as bNNNNNN_0.parquet.tmp (not *.parquet:
//     queries do not see it);
//  2. compactions.tsv gets "NNNNNN folder old-file old-file ..." and is
//     fsync'd: from here the merge counts;
//  3. the .tmp file takes its name and the old files go.
//
// openManifest finishes step 3 for recorded merges and deletes .tmp files of
// unrecorded ones, so that no event is ever counted twice or lost.
const compactionsName = "compactions.tsv"

// mergeAbove is how many files a month folder may hold before it is merged.
const mergeAbove = 4

// compaction is one recorded merge.
type compaction struct {
	batch  int
	folder string   // relative to events/
	old    []string // file names in the folder
}

func (c compaction) merged() string { return fmt.Sprintf("b%06d_0.parquet", c.batch) }

func readCompactions(dir string) ([]compaction, error) {
	data, err := os.ReadFile(filepath.Join(dir, compactionsName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []compaction
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 {
			continue // a line cut by a crash: its merge never counted
		}
		b, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		c := compaction{batch: b, folder: unescape(f[1])}
		for _, old := range f[2:] {
			c.old = append(c.old, unescape(old))
		}
		out = append(out, c)
	}
	return out, nil
}

// finishCompactions completes recorded merges and drops unrecorded ones.
func (m *manifest) finishCompactions() error {
	done, err := readCompactions(m.dir)
	if err != nil {
		return err
	}
	for _, c := range done {
		m.batches[c.batch] = true
		m.next = max(m.next, c.batch+1)
		if err := m.finish(c); err != nil {
			return err
		}
	}
	return filepath.WalkDir(filepath.Join(m.dir, "events"), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".parquet.tmp") {
			return os.Remove(path) // a merge that was never recorded
		}
		return err
	})
}

// compact merges every month folder that holds more than above files: not
// only those this run wrote to, so that a merge an interrupted run did not
// reach is made by the next one. progress hears merged of total.
func (m *manifest) compact(ctx context.Context, above int, progress func(done, total int)) (int, error) {
	folders, err := m.crowded(above)
	if err != nil || len(folders) == 0 {
		return 0, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, fmt.Sprintf("SET threads=%d; SET memory_limit='1GB'; SET temp_directory=%s",
		runtime.NumCPU(), query.Literal(filepath.Join(m.dir, "tmp")))); err != nil {
		return 0, err
	}
	merged := 0
	for i, rel := range folders {
		progress(i, len(folders))
		if err := ctx.Err(); err != nil {
			return merged, err
		}
		c, ok, err := m.merge(ctx, db, rel, above)
		if err != nil || !ok {
			if err != nil {
				return merged, err
			}
			continue
		}
		if err := m.recordCompaction(c); err != nil {
			return merged, err
		}
		m.batches[c.batch] = true
		m.next++
		if err := m.finish(c); err != nil {
			return merged, err
		}
		merged++
	}
	progress(len(folders), len(folders))
	return merged, nil
}

// crowded lists the month folders (relative to events/) that hold more than
// above Parquet files.
func (m *manifest) crowded(above int) ([]string, error) {
	events := filepath.Join(m.dir, "events")
	count := map[string]int{}
	err := filepath.WalkDir(events, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".parquet") {
			rel, _ := filepath.Rel(events, filepath.Dir(path))
			count[filepath.ToSlash(rel)]++
		}
		return err
	})
	var out []string
	for rel, n := range count {
		if n > above {
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return out, err
}

// merge is step 1: the folder's files, in batch order (the archive's, which
// is day order), into one .tmp file.
func (m *manifest) merge(ctx context.Context, db *sql.DB, rel string, above int) (compaction, bool, error) {
	folder := filepath.Join(m.dir, "events", filepath.FromSlash(rel))
	files, err := filepath.Glob(filepath.Join(folder, "*.parquet"))
	if err != nil || len(files) <= above {
		return compaction{}, false, err
	}
	sort.Strings(files)
	c := compaction{batch: m.next, folder: rel}
	quoted := make([]string, len(files))
	for i, f := range files {
		c.old = append(c.old, filepath.Base(f))
		quoted[i] = query.Literal(f)
	}
	tmp := filepath.Join(folder, c.merged()+".tmp")
	q := fmt.Sprintf("COPY (SELECT * FROM read_parquet([%s], hive_partitioning=false)) TO %s (FORMAT parquet, COMPRESSION zstd)", strings.Join(quoted, ", "), query.Literal(tmp))
	if _, err := db.ExecContext(ctx, q); err != nil {
		os.Remove(tmp)
		return c, false, fmt.Errorf("merge %s: %w", rel, err)
	}
	return c, true, nil
}

// finish is step 3 of a recorded merge; it may run again.
func (m *manifest) finish(c compaction) error {
	folder := filepath.Join(m.dir, "events", filepath.FromSlash(c.folder))
	tmp := filepath.Join(folder, c.merged()+".tmp")
	if _, err := os.Stat(tmp); err == nil {
		if err := os.Rename(tmp, filepath.Join(folder, c.merged())); err != nil {
			return err
		}
	}
	for _, old := range c.old {
		if err := os.Remove(filepath.Join(folder, old)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (m *manifest) recordCompaction(c compaction) error {
	f, err := os.OpenFile(filepath.Join(m.dir, compactionsName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "%d\t%s", c.batch, escape(c.folder))
	for _, old := range c.old {
		w.WriteString("\t" + escape(old))
	}
	w.WriteString("\n")
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}
