package opaque

import (
	"encoding/json"
	"strconv"
	"strings"
)

// lookupPath finds a dotted path such as `data.user.login` in decoded JSON.
// A key that itself contains dots (`https://example.com/groups`) is matched
// whole before the path is split. A numeric segment indexes an array; any
// other segment applied to an array maps over its elements (so
// `organizations.login` collects every organization's login).
func lookupPath(v any, path string) (any, bool) {
	if path == "" {
		return v, true
	}
	switch t := v.(type) {
	case map[string]any:
		if val, ok := t[path]; ok {
			return val, true
		}
		for i := 0; i < len(path); i++ {
			if path[i] != '.' {
				continue
			}
			if val, ok := t[path[:i]]; ok {
				if out, ok := lookupPath(val, path[i+1:]); ok {
					return out, true
				}
			}
		}
	case []any:
		seg, rest, _ := strings.Cut(path, ".")
		if n, err := strconv.Atoi(seg); err == nil {
			if n < 0 || n >= len(t) {
				return nil, false
			}
			return lookupPath(t[n], rest)
		}
		var out []any
		for _, el := range t {
			if val, ok := lookupPath(el, path); ok {
				if arr, isArr := val.([]any); isArr {
					out = append(out, arr...)
				} else {
					out = append(out, val)
				}
			}
		}
		return out, len(out) > 0
	}
	return nil, false
}

// scalarString renders a string, number or boolean as a string. Objects,
// arrays and null have no string form.
func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, t != ""
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case json.Number:
		return t.String(), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}

// stringAt returns the string at path.
func stringAt(doc map[string]any, path string) (string, bool) {
	v, ok := lookupPath(doc, path)
	if !ok {
		return "", false
	}
	return scalarString(v)
}

// stringsAt returns the strings at path: an array's scalar elements, or a
// single scalar as a one-element list.
func stringsAt(doc map[string]any, path string) []string {
	if path == "" {
		return nil
	}
	v, ok := lookupPath(doc, path)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		arr = []any{v}
	}
	var out []string
	for _, el := range arr {
		if s, ok := scalarString(el); ok {
			out = append(out, s)
		}
	}
	return out
}

// decodeObject parses a JSON object.
func decodeObject(body []byte) (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, errNotObject
	}
	return doc, nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errNotObject = constError("not a JSON object")
