package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State remembers, per chain, the newest digest an earlier run proved, so that
// the next run reads only what came after it and links to it. The tail itself
// is read again each time: a tampered proven tail is still caught.
type State struct {
	Location string           `json:"location"`
	Chains   map[string]*Tail `json:"chains"` // chainID.String() -> tail
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

func (id chainID) String() string {
	s := id.account + "/" + id.region + "/" + id.trail + "/" + id.home
	if id.backfill {
		s += "/backfill"
	}
	return s
}

// LoadState reads a state file; a missing file is an empty state (the first run).
func LoadState(path, location string) (*State, error) {
	s := &State{Location: location, Chains: map[string]*Tail{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("%s: not a state file written by trailkeeper verify --state: %v", path, err)
	}
	if s.Location != location {
		return nil, fmt.Errorf("%s: state of %s, not of %s", path, s.Location, location)
	}
	if s.Chains == nil {
		s.Chains = map[string]*Tail{}
	}
	for id, t := range s.Chains {
		if t == nil || t.Key == "" || len(t.Hash) != 64 || t.Signature == "" || t.End.IsZero() {
			return nil, fmt.Errorf("%s: chain %s: incomplete entry", path, id)
		}
	}
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
