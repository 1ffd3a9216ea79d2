package watch

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// FileSource produces inputs from files and directories and keeps
// producing them as the files change.
//
// Every file is decoded on its own and remembered by content, so a change
// re-reads only the files that changed. A file with an error (a document
// that cannot be read, or an object the Check hook rejects) does not take
// its objects away: its last good version keeps being served, with the
// error reported, until the file is fixed.
type FileSource struct {
	Paths    []string
	MeshFile string
	// Check validates assembled inputs beyond decoding (translate's index
	// problems); files with Error problems fall back to their last good
	// version. Optional.
	Check func(*inputs.Inputs) []inputs.Problem
	// Holdoff is how long a burst of changes must be quiet before a reload;
	// MaxHoldoff caps the wait from the first change.
	Holdoff, MaxHoldoff time.Duration
	Log                 *zap.Logger

	mu    sync.Mutex
	files map[string]*fileState
}

type fileState struct {
	hash   uint64
	latest *Decoder
	good   *Decoder
	goodAt time.Time
}

// Load reads the files (only changed ones are decoded again) and returns
// the assembled inputs. The error is for what makes loading impossible: a
// path given on the command line that does not exist.
func (s *FileSource) Load() (*inputs.Inputs, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = map[string]*fileState{}
	}
	names, err := ExpandPaths(s.Paths)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted between listing and reading: the next event reloads
			}
			return nil, err
		}
		seen[name] = true
		h := fnv.New64a()
		h.Write(data)
		sum := h.Sum64()
		st, ok := s.files[name]
		if ok && st.hash == sum && st.latest != nil {
			continue
		}
		if !ok {
			st = &fileState{}
			s.files[name] = st
		}
		d := NewDecoder()
		d.DecodeStream(data, name)
		st.hash, st.latest = sum, d
	}
	for name := range s.files {
		if !seen[name] {
			delete(s.files, name)
		}
	}
	var meshFile []byte
	if s.MeshFile != "" {
		if meshFile, err = os.ReadFile(s.MeshFile); err != nil {
			return nil, err
		}
		if meshFile == nil {
			meshFile = []byte{}
		}
	}

	order := make([]string, 0, len(s.files))
	for name := range s.files {
		order = append(order, name)
	}
	sort.Strings(order)

	// Files whose latest decode has errors use their last good version.
	fallback := map[string]bool{}
	for _, name := range order {
		if hasErrors(s.files[name].latest.In.Problems) {
			fallback[name] = true
		}
	}
	in := s.assemble(order, fallback, meshFile)
	var extra []inputs.Problem
	if s.Check != nil {
		probs := s.Check(in)
		bad := map[string]bool{}
		for _, p := range probs {
			if p.Severity == inputs.SeverityError && p.Source.File != "" && !fallback[p.Source.File] {
				if _, ok := s.files[p.Source.File]; ok {
					bad[p.Source.File] = true
					extra = append(extra, p) // the rejected version's errors stay visible
				}
			}
		}
		if len(bad) > 0 {
			for name := range bad {
				fallback[name] = true
			}
			in = s.assemble(order, fallback, meshFile)
		} else {
			extra = nil
		}
	}
	now := time.Now()
	for _, name := range order {
		st := s.files[name]
		if !fallback[name] {
			st.good, st.goodAt = st.latest, now
			continue
		}
		// Report the errors of the version that was not applied.
		if hasErrors(st.latest.In.Problems) {
			extra = append(extra, st.latest.In.Problems...)
		}
		msg := "the file has errors and was not applied: nothing from it is served"
		if st.good != nil {
			msg = fmt.Sprintf("the file has errors: its last good version (read %s) is served until it is fixed", st.goodAt.Format(time.RFC3339))
		}
		extra = append(extra, inputs.Problem{Severity: inputs.SeverityWarning, Source: inputs.Source{File: name}, Message: msg})
	}
	in.Problems = append(in.Problems, extra...)
	return in, nil
}

func hasErrors(ps []inputs.Problem) bool {
	for _, p := range ps {
		if p.Severity == inputs.SeverityError {
			return true
		}
	}
	return false
}

// assemble merges the files' decoded objects in file order; files in
// fallback contribute their last good version (or nothing).
func (s *FileSource) assemble(order []string, fallback map[string]bool, meshFile []byte) *inputs.Inputs {
	d := NewDecoder()
	for _, name := range order {
		st := s.files[name]
		part := st.latest
		if fallback[name] {
			part = st.good
		}
		if part == nil {
			continue
		}
		// Problems of a good part are warnings only; copy so the shared
		// part is not modified.
		d.mergeObjects(part)
		if !fallback[name] {
			d.In.Problems = append(d.In.Problems, part.In.Problems...)
		}
	}
	return d.Finish(meshFile, s.MeshFile)
}

// mergeObjects appends part's objects (not its problems).
func (d *Decoder) mergeObjects(part *Decoder) {
	problems := d.In.Problems
	d.merge(part)
	d.In.Problems = problems
}

// Run watches the files and calls apply with new inputs after each burst of
// changes, until ctx is done. Load errors are logged and the previous
// inputs stay in effect.
func (s *FileSource) Run(ctx context.Context, apply func(*inputs.Inputs)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	s.addWatches(w)
	db := newDebounce(s.Holdoff, s.MaxHoldoff)
	defer db.stop()
	pending := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					s.addTree(w, ev.Name)
				}
			}
			if !s.relevant(ev.Name) {
				continue
			}
			pending++
			db.change()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.Log.Warn("file watch error", zap.Error(err))
		case <-db.C():
			db.fired()
			start := time.Now()
			in, err := s.Load()
			if err != nil {
				s.Log.Error("reloading files failed: keeping the current config", zap.Error(err))
				pending = 0
				continue
			}
			s.Log.Info("files changed", zap.Int("events", pending), zap.Duration("read", time.Since(start)))
			pending = 0
			apply(in)
			// Editors replace files by rename: make sure the new ones are
			// watched (directories are; a file given by name needs its
			// parent watched, which addWatches does).
			s.addWatches(w)
		}
	}
}

// relevant reports whether a changed path can affect the inputs.
func (s *FileSource) relevant(name string) bool {
	if name == s.MeshFile {
		return true
	}
	for _, p := range s.Paths {
		if p == name {
			return true
		}
	}
	return IsConfigFile(name)
}

func (s *FileSource) addWatches(w *fsnotify.Watcher) {
	for _, p := range append(append([]string(nil), s.Paths...), s.MeshFile) {
		if p == "" || p == "-" {
			continue
		}
		info, err := os.Stat(p)
		if err == nil && info.IsDir() {
			s.addTree(w, p)
			continue
		}
		// A single file: watch its directory, so a rename-and-replace is seen.
		_ = w.Add(filepath.Dir(p))
	}
}

func (s *FileSource) addTree(w *fsnotify.Watcher, root string) {
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if path != root && len(d.Name()) > 0 && d.Name()[0] == '.' {
				return filepath.SkipDir
			}
			_ = w.Add(path)
		}
		return nil
	})
}
