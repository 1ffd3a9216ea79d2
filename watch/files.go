package watch

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// IsConfigFile reports whether a file name is one the loader reads.
func IsConfigFile(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") {
		return false // editor swap files, .git
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// ExpandPaths lists the config files named by paths: files as given,
// directories walked recursively, in a stable order. "-" stands for standard
// input and is passed through.
func ExpandPaths(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		if p == "-" {
			files = append(files, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if IsConfigFile(path) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

// LoadOptions say where to read from.
type LoadOptions struct {
	Paths []string
	// Stdin is read for the path "-".
	Stdin io.Reader
	// MeshFile, when set, is a MeshConfig YAML that replaces the istio
	// ConfigMap's `mesh` key.
	MeshFile string
}

// Load reads every file and returns the inputs. The error is only for what
// makes loading impossible (a path that does not exist, an unreadable mesh
// file); problems inside documents are in Inputs.Problems.
func Load(opts LoadOptions) (*inputs.Inputs, *Decoder, error) {
	files, err := ExpandPaths(opts.Paths)
	if err != nil {
		return nil, nil, err
	}
	d := NewDecoder()
	for _, f := range files {
		var data []byte
		name := f
		if f == "-" {
			if opts.Stdin == nil {
				return nil, nil, fmt.Errorf("-: no standard input")
			}
			data, err = io.ReadAll(opts.Stdin)
			name = "<stdin>"
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			// A file that vanished between listing and reading (an editor's
			// rename-and-replace) is not fatal: the next event reloads it.
			if os.IsNotExist(err) {
				continue
			}
			return nil, nil, err
		}
		d.DecodeStream(data, name)
	}
	var mesh []byte
	if opts.MeshFile != "" {
		mesh, err = os.ReadFile(opts.MeshFile)
		if err != nil {
			return nil, nil, err
		}
		if mesh == nil {
			mesh = []byte{}
		}
	}
	return d.Finish(mesh, opts.MeshFile), d, nil
}

// Parse decodes in-memory YAML, for tests and library users.
func Parse(data []byte, name string) *inputs.Inputs {
	d := NewDecoder()
	d.DecodeStream(data, name)
	return d.Finish(nil, "")
}
