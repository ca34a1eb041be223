package main

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v2"
)

type document struct {
	source, text, kind, name string
}

// installOrder: the order in which Helm installs kinds (and `helm template`
// prints them); other kinds come after these, by name.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
	"StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
	"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
}

// documents splits the rendered files into Kubernetes objects and checks
// each as `helm lint` and an API server would first: valid YAML, apiVersion,
// kind and a metadata.name that is a DNS subdomain, no object twice.
func documents(rendered map[string]string) ([]document, error) {
	var docs []document
	seen := map[string]string{}
	var problems []string
	sources := make([]string, 0, len(rendered))
	for source := range rendered {
		sources = append(sources, source)
	}
	sort.Strings(sources)
	for _, source := range sources {
		text := rendered[source]
		if strings.HasSuffix(source, "NOTES.txt") {
			continue
		}
		for _, part := range separator.Split(text, -1) {
			part = strings.TrimSpace(part)
			if isEmptyYAML(part) {
				continue
			}
			var head struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(part), &head); err != nil {
				problems = append(problems, fmt.Sprintf("%s: not YAML: %v", source, err))
				continue
			}
			var whole interface{}
			if err := yaml.UnmarshalStrict([]byte(part), &whole); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", source, err))
			}
			name := head.Metadata.Name
			switch {
			case head.APIVersion == "" || head.Kind == "":
				problems = append(problems, fmt.Sprintf("%s: apiVersion and kind required", source))
			case len(name) > 253 || !dns1123Subdomain(name):
				problems = append(problems, fmt.Sprintf("%s: %s metadata.name %q is not a DNS subdomain", source, head.Kind, name))
			}
			id := head.APIVersion + "/" + head.Kind + "/" + name
			if other, dup := seen[id]; dup {
				problems = append(problems, fmt.Sprintf("%s: %s %q also in %s", source, head.Kind, name, other))
			}
			seen[id] = source
			docs = append(docs, document{source: source, text: part, kind: head.Kind, name: name})
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("rendered objects:\n  %s", strings.Join(problems, "\n  "))
	}
	rank := map[string]int{}
	for i, k := range installOrder {
		rank[k] = i
	}
	sort.SliceStable(docs, func(i, j int) bool {
		ri, iok := rank[docs[i].kind]
		rj, jok := rank[docs[j].kind]
		switch {
		case iok && jok && ri != rj:
			return ri < rj
		case iok != jok:
			return iok
		case docs[i].kind != docs[j].kind:
			return docs[i].kind < docs[j].kind
		}
		return docs[i].source < docs[j].source
	})
	return docs, nil
}

func isEmptyYAML(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

func dns1123Subdomain(name string) bool {
	if name == "" {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if !dns1123Label.MatchString(label) {
			return false
		}
	}
	return true
}
