package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/store"
)

// StateVersion is the version of the state file's format; 3 fingerprints
// the cutoff's day by the hour. A state of version 2 (midnight cutoffs) is
// read as it is; one of version 1 kept no fingerprints, so it vouches for
// nothing before its tails (the first run with it verifies everything once).
// A newer one is refused: an older trailkeeper would not see its hours.
const StateVersion = 3

// State is what an earlier run proved, so that the next run reads only what
// came after it. Per chain it keeps the newest proven digest, which is read
// again and linked to (a tampered tail is caught). Per account and region it
// keeps a fingerprint of the listing of everything before a cutoff: the next
// run lists the whole range again (listing, not reading) and re-verifies a
// folder in full when its listing changed (a new object or version, a delete
// marker, a changed ETag or size).
type State struct {
	Version  int                `json:"version"`
	Location string             `json:"location"`
	Chains   map[string]*Tail   `json:"chains"`  // chainID.String() -> tail
	Folders  map[string]*Listed `json:"folders"` // "ACCOUNT/REGION" -> what was listed before its cutoff
}

// Tail is the newest proven digest of a chain.
type Tail struct {
	Key       string    `json:"key"`
	VersionID string    `json:"versionId,omitempty"`
	Hash      string    `json:"sha256"` // of the uncompressed digest
	Signature string    `json:"signature"`
	End       time.Time `json:"end"`
	Proven    time.Time `json:"provenAt"`
}

// Listed fingerprints every object version of one account and region
// before Cutoff (a UTC hour; a midnight when the hours of its day were not
// kept): whole months, the days of Cutoff's month, and the hours of Cutoff's
// day. A day's fingerprint is the SHA-256 of its versions' "key, version id,
// ETag, size, delete marker" lines in listing order; a month's, of its days';
// an hour's, of the versions whose names give that hour.
type Listed struct {
	Cutoff time.Time         `json:"cutoff"`
	Months map[string]string `json:"months,omitempty"` // "2026-11"
	Days   map[string]string `json:"days,omitempty"`   // "2026-12-05", of Cutoff's month
	Hours  map[string]string `json:"hours,omitempty"`  // "2026-12-07T05", of Cutoff's day
}

func (id chainID) String() string {
	s := id.account + "/" + id.region + "/" + id.trail + "/" + id.home
	if id.backfill {
		s += "/backfill"
	}
	return s
}

// LoadState reads a state file; a missing file is an empty state (the first run).
func LoadState(path, location string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		data, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := DecodeState(data, location)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// DecodeState reads a state as Save writes it (nothing: the first run), for
// the archive at location.
func DecodeState(data []byte, location string) (*State, error) {
	s := &State{Version: StateVersion, Location: location, Chains: map[string]*Tail{}, Folders: map[string]*Listed{}}
	if len(data) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("not a state file written by trailkeeper verify --state: %v", err)
	}
	if s.Location != location {
		return nil, fmt.Errorf("state of %s, not of %s", s.Location, location)
	}
	if s.Version > StateVersion {
		return nil, fmt.Errorf("written by a newer trailkeeper (state version %d; this one reads %d)", s.Version, StateVersion)
	}
	if s.Chains == nil {
		s.Chains = map[string]*Tail{}
	}
	if s.Folders == nil {
		s.Folders = map[string]*Listed{}
	}
	for id, t := range s.Chains {
		if t == nil || t.Key == "" || len(t.Hash) != 64 || t.Signature == "" || t.End.IsZero() {
			return nil, fmt.Errorf("chain %s: incomplete entry", id)
		}
	}
	for id, l := range s.Folders {
		if l == nil || l.Cutoff.IsZero() {
			return nil, fmt.Errorf("folder %s: incomplete entry", id)
		}
	}
	s.Version = StateVersion
	return s, nil
}

// Save writes the state atomically, so that a run killed while saving leaves
// the previous state whole.
func (s *State) Save(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// fingerprinter hashes one folder's listing by day, and by hour for the
// last days, while it streams by. The listing comes in key order, so one
// kind of file (logs, digests, Insights) of one day arrives in one run: each
// run is hashed as it passes and only its 32-byte sum is kept, whatever the
// folder holds.
type fingerprinter struct {
	days  runs // by "2026-12-05"
	hours runs // by "2026-12-05T07", for days from hourFrom
	// hourFrom is the first day whose hours are kept: the next cutoff (the
	// proven tail) lies in the last days, and hours of every day of a year
	// would take memory for nothing.
	hourFrom string // "2026/12/02", as key folders name days
}

func newFingerprinter(hourFrom time.Time) *fingerprinter {
	return &fingerprinter{days: runs{sums: map[string]map[string][]byte{}}, hours: runs{sums: map[string]map[string][]byte{}}, hourFrom: hourFrom.UTC().Format("2006/01/02")}
}

// add takes one version whose key lies in day (YYYY/MM/DD) under kind and
// names time t.
func (f *fingerprinter) add(v store.Version, kind, day string, t time.Time) {
	line := []byte(v.Key + "\t" + v.VersionID + "\t" + v.ETag + "\t" + strconv.FormatInt(v.Size, 10) + "\t" + strconv.FormatBool(v.DeleteMarker) + "\n")
	f.days.add(day, kind, line)
	if day < f.hourFrom {
		return
	}
	f.hours.add(day+"T"+t.UTC().Format("15"), kind, line) // a name's time lies in its folder's day (ct.ParseKey)
}

// runs hashes runs of lines by period and kind.
type runs struct {
	sums map[string]map[string][]byte // period -> kind -> the sums of its runs
	run  hash.Hash
	at   [2]string // the period and kind of the open run
}

func (r *runs) add(period, kind string, line []byte) {
	if at := [2]string{period, kind}; at != r.at {
		r.close()
		r.run, r.at = sha256.New(), at
	}
	r.run.Write(line)
}

func (r *runs) close() {
	if r.run == nil {
		return
	}
	period, kind := strings.ReplaceAll(r.at[0], "/", "-"), r.at[1] // "2026/12/05" -> "2026-12-05", once a run
	if r.sums[period] == nil {
		r.sums[period] = map[string][]byte{}
	}
	r.sums[period][kind] = append(r.sums[period][kind], r.run.Sum(nil)...)
	r.run = nil
}

// sum is a period's fingerprint: the SHA-256 of each kind's name and the
// sums of its runs, the kinds in the order a listing gives them
// ("CloudTrail-Digest/" before "CloudTrail/"), however they arrived (a walk
// lists day folders side by side).
func (r *runs) sum(period string) string {
	kinds := make([]string, 0, len(r.sums[period]))
	for kind := range r.sums[period] {
		kinds = append(kinds, kind)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i]+"/" < kinds[j]+"/" })
	h := sha256.New()
	for _, kind := range kinds {
		sums := r.sums[period][kind]
		for i := 0; i < len(sums); i += sha256.Size {
			h.Write([]byte(kind))
			h.Write(sums[i : i+sha256.Size])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// listed is the fingerprint of everything before cutoff: by the hour when
// the hours of its day were kept, else by the day.
func (f *fingerprinter) listed(cutoff time.Time) *Listed {
	f.days.close()
	f.hours.close()
	cutoff = cutoff.UTC()
	cut, month := cutoff.Format(time.DateOnly), cutoff.Format("2006-01")
	hours := cutoff.Format("2006/01/02") >= f.hourFrom
	if hours {
		cutoff = cutoff.Truncate(time.Hour)
	} else {
		cutoff = cutoff.Truncate(24 * time.Hour)
	}
	out := &Listed{Cutoff: cutoff, Months: map[string]string{}, Days: map[string]string{}, Hours: map[string]string{}}
	keys := make([]string, 0, len(f.days.sums))
	for k := range f.days.sums {
		if k < cut {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	months := map[string]hash.Hash{}
	for _, k := range keys {
		day := f.days.sum(k)
		if k[:7] == month {
			out.Days[k] = day
			continue
		}
		if months[k[:7]] == nil {
			months[k[:7]] = sha256.New()
		}
		months[k[:7]].Write([]byte(k + " " + day + "\n"))
	}
	for m, h := range months {
		out.Months[m] = hex.EncodeToString(h.Sum(nil))
	}
	if hours {
		for k := range f.hours.sums {
			if k[:10] == cut && k[11:] < cutoff.Format("15") {
				out.Hours[k] = f.hours.sum(k)
			}
		}
	}
	return out
}

// changed names the months and days whose listing differs from old.
func (f *fingerprinter) changed(old *Listed) []string {
	now := f.listed(old.Cutoff)
	var out []string
	for what, pair := range map[string][2]map[string]string{"month": {old.Months, now.Months}, "day": {old.Days, now.Days}, "hour": {old.Hours, now.Hours}} {
		for k := range union(pair[0], pair[1]) {
			if pair[0][k] != pair[1][k] {
				out = append(out, what+" "+k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func union(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
