// Command render renders a Helm v3 chart as `helm template` does and makes the
// checks of `helm lint` that matter to this repository, with nothing but Go's
// text/template, sprig (Helm's template functions) and a YAML library: the
// packages Debian ships, built offline (GO111MODULE=off). `make helm-check`
// builds and runs it; a real helm renders the same chart the same way.
//
//	render [-f values.yaml]... [--set k=v]... [--set-string k=v]...
//	       [--namespace NS] [--strict] [--lint] NAME CHART_DIR
//
// It prints the rendered documents, each after "---" and "# Source: FILE",
// ordered by kind as Helm installs them (NOTES.txt is rendered, not printed).
// With --lint it prints nothing and only checks. It exits 1 on any failure.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/Masterminds/semver"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var files, sets, setStrings listFlag
	flag.Var(&files, "f", "a values file (repeatable; later wins)")
	flag.Var(&files, "values", "same as -f")
	flag.Var(&sets, "set", "key=value (repeatable)")
	flag.Var(&setStrings, "set-string", "key=value, the value a string (repeatable)")
	namespace := flag.String("namespace", "default", "the release's namespace")
	strict := flag.Bool("strict", false, "a missing value is an error (missingkey=error)")
	lintOnly := flag.Bool("lint", false, "check only: print nothing")
	kube := flag.String("kube-version", "v1.31.0", ".Capabilities.KubeVersion (Chart.yaml's kubeVersion must allow it)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: render [flags] NAME CHART_DIR")
		os.Exit(2)
	}
	out, err := run(flag.Arg(0), flag.Arg(1), *namespace, *kube, files, sets, setStrings, *strict)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	if !*lintOnly {
		fmt.Print(out)
	}
}

func run(name, dir, namespace, kube string, files, sets, setStrings []string, strict bool) (string, error) {
	c, err := loadChart(dir)
	if err != nil {
		return "", err
	}
	kubeVersion, err := semver.NewVersion(kube)
	if err != nil {
		return "", fmt.Errorf("--kube-version %q: %v", kube, err)
	}
	if problems := lintChart(c, kubeVersion); len(problems) > 0 {
		return "", fmt.Errorf("Chart.yaml:\n  %s", strings.Join(problems, "\n  "))
	}
	user := map[string]interface{}{}
	for _, f := range files {
		v, err := readValuesFile(f)
		if err != nil {
			return "", err
		}
		user = merge(user, v)
	}
	for _, s := range sets {
		if err := parseSet(user, s, false); err != nil {
			return "", err
		}
	}
	for _, s := range setStrings {
		if err := parseSet(user, s, true); err != nil {
			return "", err
		}
	}
	if !dns1123Label.MatchString(name) || len(name) > 53 {
		return "", fmt.Errorf("release name %q: lower-case letters, digits and '-', at most 53", name)
	}
	top := map[string]interface{}{
		"Values": coalesce(user, c.Values),
		"Chart":  c.Metadata,
		"Files":  Files{dir: dir},
		"Release": Release{
			Name: name, Namespace: namespace, Service: "Helm", Revision: 1, IsInstall: true,
		},
		"Capabilities": Capabilities{
			KubeVersion: KubeVersion{
				Version:    "v" + kubeVersion.String(),
				Major:      fmt.Sprint(kubeVersion.Major()),
				Minor:      fmt.Sprint(kubeVersion.Minor()),
				GitVersion: "v" + kubeVersion.String(),
			},
			APIVersions: builtinAPIVersions,
		},
	}
	rendered, err := render(c, top, strict)
	if err != nil {
		return "", err
	}
	docs, err := documents(rendered)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, d := range docs {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", d.source, d.text)
	}
	return b.String(), nil
}

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// The documents of a file are separated by a line of "---".
	separator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)
)

var builtinAPIVersions = APIVersions{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"apiextensions.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1",
}

// lintChart: the Chart.yaml rules of `helm lint`.
func lintChart(c *Chart, kube *semver.Version) []string {
	m := c.Metadata
	var problems []string
	if m.APIVersion != "v2" {
		problems = append(problems, fmt.Sprintf("apiVersion %q: v2 expected (Helm 3)", m.APIVersion))
	}
	if m.Name == "" || strings.ContainsAny(m.Name, "/\\ ") {
		problems = append(problems, fmt.Sprintf("name %q: required, no slash or space", m.Name))
	}
	if _, err := semver.StrictNewVersion(m.Version); err != nil {
		problems = append(problems, fmt.Sprintf("version %q: SemVer 2 required", m.Version))
	}
	if m.Type != "" && m.Type != "application" && m.Type != "library" {
		problems = append(problems, fmt.Sprintf("type %q: application or library", m.Type))
	}
	if m.Description == "" {
		problems = append(problems, "description: recommended, missing")
	}
	if m.AppVersion == "" {
		problems = append(problems, "appVersion: missing")
	}
	if m.KubeVersion != "" {
		constraint, err := semver.NewConstraint(m.KubeVersion)
		if err != nil {
			problems = append(problems, fmt.Sprintf("kubeVersion %q: %v", m.KubeVersion, err))
		} else if !constraint.Check(kube) {
			problems = append(problems, fmt.Sprintf("kubeVersion %q: Kubernetes %s is not allowed", m.KubeVersion, kube))
		}
	}
	if len(m.Dependencies) > 0 {
		problems = append(problems, "dependencies: not supported by this renderer")
	}
	if _, ok := c.Templates["templates/NOTES.txt"]; !ok {
		problems = append(problems, "templates/NOTES.txt: missing")
	}
	return problems
}
