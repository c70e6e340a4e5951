package index

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/trailkeeper/trailkeeper/internal/eventparquet"
)

// writers turn a batch's records into its Parquet files on as many
// goroutines (lanes) as there are cores. Records come in key order, a folder
// at a time, so each lane takes the next few hundred records whatever their
// folder and writes its own file of each folder it meets: a batch leaves
// up to one file per lane in a folder, and compaction merges them later.
type writers struct {
	stage   string // where the batch's files grow
	batch   int
	lanes   []*lane
	in      chan []item
	pending []item
	wg      sync.WaitGroup
}

// lane is one goroutine's share: its files and what it was given.
type lane struct {
	id      int
	files   map[string]*eventparquet.Writer // by folder under events/
	made    []string                        // the files, relative to the stage
	taken   int64
	refused int64
	err     error
}

type item struct {
	folder string
	raw    []byte
}

// sendEvery is how many records a lane takes at once.
const sendEvery = 256

// newWriters starts the lanes of a batch; finish ends them.
func newWriters(stage string, batch int) *writers {
	n := runtime.GOMAXPROCS(0)
	w := &writers{stage: stage, batch: batch, in: make(chan []item, n)}
	for i := range n {
		l := &lane{id: i, files: map[string]*eventparquet.Writer{}}
		w.lanes = append(w.lanes, l)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for items := range w.in {
				for _, it := range items {
					l.write(w, it)
				}
			}
			l.close() // the files' last row groups are encoded here, in parallel too
		}()
	}
	return w
}

// add hands a record to the next free lane.
func (w *writers) add(folder string, raw []byte) {
	w.pending = append(w.pending, item{folder: folder, raw: raw})
	if len(w.pending) == sendEvery {
		w.in <- w.pending
		w.pending = make([]item, 0, sendEvery)
	}
}

func (l *lane) write(w *writers, it item) {
	if l.err != nil {
		return
	}
	pw := l.files[it.folder]
	if pw == nil {
		// Names are unique in the batch: the lane's index and its count.
		rel := filepath.Join(it.folder, fmt.Sprintf("b%06d_%d.parquet", w.batch, len(w.lanes)*len(l.files)+l.id))
		path := filepath.Join(w.stage, rel)
		if l.err = os.MkdirAll(filepath.Dir(path), 0o755); l.err != nil {
			return
		}
		f, err := os.Create(path)
		if err != nil {
			l.err = err
			return
		}
		if pw, l.err = eventparquet.NewWriter(f); l.err != nil {
			f.Close()
			return
		}
		l.files[it.folder] = pw
		l.made = append(l.made, rel)
	}
	if err := pw.Append(it.raw); err != nil {
		l.refused++ // not JSON where it is read: the rest is indexed, and this counted
		return
	}
	l.taken++
}

// close writes each file's footer.
func (l *lane) close() {
	for folder, pw := range l.files {
		if err := pw.Close(); err != nil && l.err == nil {
			l.err = fmt.Errorf("%s: %w", folder, err)
		}
	}
}

// finish writes every file's footer and says what the batch holds: its
// files (relative to the stage, as under events/), the records taken and
// refused.
func (w *writers) finish() (files []string, taken, refused int64, err error) {
	if len(w.pending) > 0 {
		w.in <- w.pending
		w.pending = nil
	}
	close(w.in)
	w.wg.Wait()
	for _, l := range w.lanes {
		files = append(files, l.made...)
		taken += l.taken
		refused += l.refused
		if err == nil {
			err = l.err
		}
	}
	return files, taken, refused, err
}
