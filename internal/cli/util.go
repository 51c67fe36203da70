package cli

import (
	"path/filepath"
	"sort"
)

func absPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}
