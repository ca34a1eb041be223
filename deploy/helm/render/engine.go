package main

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

// Release is .Release as `helm template` fills it (a first install).
type Release struct {
	Name      string
	Namespace string
	Service   string
	Revision  int
	IsInstall bool
	IsUpgrade bool
}

// Capabilities is .Capabilities: no cluster is asked, as with `helm template`.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions APIVersions
}

type KubeVersion struct{ Version, Major, Minor, GitVersion string }

func (k KubeVersion) String() string { return k.Version }

type APIVersions []string

// Has says whether "group/version" or "group/version/Kind" is in the list.
func (a APIVersions) Has(name string) bool {
	for _, v := range a {
		if v == name {
			return true
		}
	}
	return false
}

// funcs is the function map of a Helm template: sprig's, without the two that
// read the environment (Helm removes them: a chart must not depend on the
// machine rendering it), and Helm's own. include, tpl and required are bound
// to the template set in render.
func funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["fromYaml"] = fromYAML
	f["fromYamlArray"] = fromYAMLArray
	f["toJson"] = toJSON
	f["fromJson"] = fromJSON
	f["fromJsonArray"] = fromJSONArray
	f["toToml"] = func(interface{}) (string, error) {
		return "", fmt.Errorf("toToml is not supported by this renderer")
	}
	// No cluster to look in: lookup finds nothing, as under `helm template`.
	f["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	f["include"] = func(string, interface{}) (string, error) { return "", nil }
	f["tpl"] = func(string, interface{}) (string, error) { return "", nil }
	f["required"] = func(string, interface{}) (interface{}, error) { return nil, nil }
	return f
}

// toYAML marshals as Helm does (through JSON, so json tags and key order
// apply), without the final newline.
func toYAML(v interface{}) string {
	asJSON, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var doc interface{}
	if err := yaml.Unmarshal(asJSON, &doc); err != nil {
		return ""
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m, err := parseYAMLMap([]byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	var doc interface{}
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return []interface{}{err.Error()}
	}
	asJSON, _ := json.Marshal(jsonable(doc))
	var out []interface{}
	if err := json.Unmarshal(asJSON, &out); err != nil {
		return []interface{}{err.Error()}
	}
	return out
}

func toJSON(v interface{}) string {
	out, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(out)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	var out []interface{}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return []interface{}{err.Error()}
	}
	return out
}

// render executes every template of the chart but the partials (`_*`) with
// the top-level object Helm gives them; it returns the output by file name.
func render(c *Chart, top map[string]interface{}, strict bool) (map[string]string, error) {
	root := template.New("gotpl")
	if strict {
		root.Option("missingkey=error")
	} else {
		root.Option("missingkey=zero")
	}
	fm := funcs()
	depth := map[string]int{}
	fm["include"] = func(name string, data interface{}) (string, error) {
		if depth[name] > 1000 {
			return "", fmt.Errorf("include %q: nested more than 1000 deep", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var b strings.Builder
		err := root.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	fm["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		if _, err := t.New("tpl").Parse(text); err != nil {
			return "", fmt.Errorf("tpl %q: %v", text, err)
		}
		var b strings.Builder
		err = t.ExecuteTemplate(&b, "tpl", data)
		return strings.ReplaceAll(b.String(), "<no value>", ""), err
	}
	fm["required"] = func(message string, v interface{}) (interface{}, error) {
		if s, ok := v.(string); v == nil || (ok && s == "") {
			return v, fmt.Errorf("%s", message)
		}
		return v, nil
	}
	root.Funcs(fm)

	names := make([]string, 0, len(c.Templates))
	for name := range c.Templates {
		names = append(names, name)
	}
	names = templateOrder(names)
	prefix := c.Metadata.Name + "/"
	for _, name := range names {
		if _, err := root.New(prefix + name).Parse(c.Templates[name]); err != nil {
			return nil, fmt.Errorf("parse error: %v", err)
		}
	}
	out := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		top["Template"] = map[string]interface{}{
			"Name": prefix + name, "BasePath": prefix + "templates",
		}
		var b strings.Builder
		if err := root.ExecuteTemplate(&b, prefix+name, top); err != nil {
			return nil, fmt.Errorf("execution error: %v", err)
		}
		// missingkey=zero still prints "<no value>" for a missing map key.
		out[prefix+name] = strings.ReplaceAll(b.String(), "<no value>", "")
	}
	return out, nil
}
