package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v2"
)

// Metadata is Chart.yaml, under the field names Helm's templates see
// (.Chart.Name, .Chart.AppVersion, ...).
type Metadata struct {
	APIVersion   string            `yaml:"apiVersion"`
	Name         string            `yaml:"name"`
	Version      string            `yaml:"version"`
	KubeVersion  string            `yaml:"kubeVersion"`
	Description  string            `yaml:"description"`
	Type         string            `yaml:"type"`
	Keywords     []string          `yaml:"keywords"`
	Home         string            `yaml:"home"`
	Sources      []string          `yaml:"sources"`
	Maintainers  []Maintainer      `yaml:"maintainers"`
	Icon         string            `yaml:"icon"`
	AppVersion   string            `yaml:"appVersion"`
	Deprecated   bool              `yaml:"deprecated"`
	Annotations  map[string]string `yaml:"annotations"`
	Dependencies []interface{}     `yaml:"dependencies"`
}

type Maintainer struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
	URL   string `yaml:"url"`
}

// Chart is a chart directory: its metadata, default values and templates.
type Chart struct {
	Dir       string
	Metadata  Metadata
	Values    map[string]interface{}
	Templates map[string]string // "templates/x.yaml" -> text
}

func loadChart(dir string) (*Chart, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	c := &Chart{Dir: dir, Templates: map[string]string{}}
	// Strict: a misspelt field in Chart.yaml is an error, not silence.
	if err := yaml.UnmarshalStrict(raw, &c.Metadata); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	values, err := readValuesFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	c.Values = values
	root := filepath.Join(dir, "templates")
	err = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		c.Templates[filepath.ToSlash(rel)] = string(text)
		return nil
	})
	return c, err
}

// readValuesFile reads YAML the way Helm does (sigs.k8s.io/yaml: YAML to JSON,
// then encoding/json): every number becomes a float64, so a template that
// compares `.Values.replicaCount` with an int literal fails here as in Helm.
func readValuesFile(name string) (map[string]interface{}, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	values, err := parseYAMLMap(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return values, nil
}

func parseYAMLMap(raw []byte) (map[string]interface{}, error) {
	var doc interface{}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return map[string]interface{}{}, nil
	}
	asJSON, err := json.Marshal(jsonable(doc))
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal(asJSON, &out); err != nil {
		return nil, fmt.Errorf("not a map at the top: %v", err)
	}
	return out, nil
}

// jsonable turns yaml.v2's map[interface{}]interface{} into string-keyed maps.
func jsonable(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[fmt.Sprint(k)] = jsonable(val)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, val := range t {
			l[i] = jsonable(val)
		}
		return l
	}
	return v
}

// coalesce lays the user's values over the chart's defaults: maps merge key by
// key, anything else is replaced, and a null given by the user removes the
// default (Helm's documented rule for deleting a default key).
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(defaults))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range user {
		if v == nil {
			delete(out, k)
			continue
		}
		um, uok := v.(map[string]interface{})
		dm, dok := out[k].(map[string]interface{})
		if uok && dok {
			out[k] = coalesce(um, dm)
		} else {
			out[k] = v
		}
	}
	return out
}

// merge is how several -f files and --set combine before meeting the
// defaults: later wins, maps merge, a null is kept (for coalesce to apply).
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		sm, sok := v.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			dst[k] = merge(dm, sm)
		} else {
			dst[k] = v
		}
	}
	return dst
}

// templateOrder is the order Helm parses templates in: shallower paths first,
// then by name; the order matters only for which `define` of a name wins.
func templateOrder(names []string) []string {
	sorted := append([]string(nil), names...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := strings.Count(sorted[i], "/"), strings.Count(sorted[j], "/")
		if a != b {
			return a < b
		}
		return sorted[i] < sorted[j]
	})
	return sorted
}

// Files is .Files: the chart's files outside templates/ and its metadata.
type Files struct{ dir string }

func (f Files) GetBytes(name string) []byte {
	clean := path.Clean("/" + name)[1:]
	if clean == "Chart.yaml" || clean == "values.yaml" || strings.HasPrefix(clean, "templates/") {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(clean)))
	if err != nil {
		return nil
	}
	return data
}

func (f Files) Get(name string) string { return string(f.GetBytes(name)) }

func (f Files) Lines(name string) []string {
	text := f.Get(name)
	if text == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}
