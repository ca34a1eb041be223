package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// parseSet applies one --set (or --set-string) argument, "a.b=1,c[0]=x", to
// values. The subset of Helm's syntax supported: dotted keys, list indexes,
// comma-separated pairs, a list as {a,b}, a backslash escaping a comma, dot
// or equals sign. Values are typed as Helm types them (int64, bool, null,
// else string) unless asString.
func parseSet(values map[string]interface{}, arg string, asString bool) error {
	for _, pair := range splitUnescaped(arg, ',') {
		eq := indexUnescaped(pair, '=')
		if eq < 0 {
			return fmt.Errorf("--set %q: key=value expected", pair)
		}
		key, raw := pair[:eq], pair[eq+1:]
		var value interface{}
		if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			list := []interface{}{}
			for _, item := range splitUnescaped(raw[1:len(raw)-1], ',') {
				list = append(list, scalar(unescape(item), asString))
			}
			value = list
		} else {
			value = scalar(unescape(raw), asString)
		}
		if err := setPath(values, splitUnescaped(key, '.'), value); err != nil {
			return fmt.Errorf("--set %q: %v", pair, err)
		}
	}
	return nil
}

func scalar(s string, asString bool) interface{} {
	switch {
	case asString:
		return s
	case strings.EqualFold(s, "true"):
		return true
	case strings.EqualFold(s, "false"):
		return false
	case strings.EqualFold(s, "null"):
		return nil
	}
	// A leading zero keeps a string a string (a zip code, an octal mode).
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && (s == "0" || !strings.HasPrefix(s, "0")) {
		return n
	}
	return s
}

var indexed = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

func setPath(m map[string]interface{}, keys []string, value interface{}) error {
	key := unescape(keys[0])
	last := len(keys) == 1
	if match := indexed.FindStringSubmatch(key); match != nil {
		i, _ := strconv.Atoi(match[2])
		list, _ := m[match[1]].([]interface{})
		for len(list) <= i {
			list = append(list, nil)
		}
		if last {
			list[i] = value
		} else {
			child, ok := list[i].(map[string]interface{})
			if !ok {
				child = map[string]interface{}{}
			}
			if err := setPath(child, keys[1:], value); err != nil {
				return err
			}
			list[i] = child
		}
		m[match[1]] = list
		return nil
	}
	if last {
		m[key] = value
		return nil
	}
	child, ok := m[key].(map[string]interface{})
	if !ok {
		child = map[string]interface{}{}
		m[key] = child
	}
	return setPath(child, keys[1:], value)
}

// indexUnescaped: the first sep not escaped and not inside {}.
func indexUnescaped(s string, sep byte) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case s[i] == '{':
			depth++
		case s[i] == '}' && depth > 0:
			depth--
		case s[i] == sep && depth == 0:
			return i
		}
	}
	return -1
}

func splitUnescaped(s string, sep byte) []string {
	var parts []string
	for {
		i := indexUnescaped(s, sep)
		if i < 0 {
			return append(parts, s)
		}
		parts = append(parts, s[:i])
		s = s[i+1:]
	}
}

func unescape(s string) string {
	return regexp.MustCompile(`\\([,.=\\])`).ReplaceAllString(s, "$1")
}
