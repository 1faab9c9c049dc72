package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type dur time.Duration

func (d *dur) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = dur(v)
	return nil
}

type Base struct {
	Owner string `json:"owner"`
}

type repo struct {
	Name  string   `json:"name"`
	Paths []string `json:"paths,omitempty"`
}

type scope struct {
	Repos []repo          `json:"repos"`
	Tools []string        `json:"tools"`
	Max   dur             `json:"maxDuration"`
	Ptr   *repo           `json:"ptr,omitempty"`
	Arr   [2]repo         `json:"arr"`
	Map   map[string]repo `json:"map"`
}

type doc struct {
	Base
	Agent   string          `json:"agent"`
	Count   int             `json:"count,omitempty"`
	Secret  string          `json:"-"`
	Dash    string          `json:"-,"`
	NoTag   string          // JSON name "NoTag"
	When    time.Time       `json:"when"`
	Scope   scope           `json:"scope"`
	PScope  *scope          `json:"pscope"`
	Any     any             `json:"any"`
	Raw     json.RawMessage `json:"raw"`
	private string          //nolint:unused // must not be a JSON field
}

func TestDecodeAccepts(t *testing.T) {
	in := `{
		"owner": "alice", "agent": "bot", "count": 3, "-": "dash", "NoTag": "x",
		"when": "2026-11-25T20:00:00Z",
		"scope": {"repos": [{"name": "acme/api", "paths": ["src/**"]}], "tools": ["read"], "maxDuration": "30m",
		          "ptr": {"name": "p"}, "arr": [{"name": "a0"}, {"name": "a1"}],
		          "map": {"Key": {"name": "m"}, "other": {"name": "o"}}},
		"pscope": {"repos": null},
		"any": {"Free": 1, "form": [true, null, 1.5]},
		"raw": {"Whatever": "goes"}
	}`
	var got doc
	if err := Decode([]byte(in), &got); err != nil {
		t.Fatalf("Decode = %v; want nil", err)
	}
	want := doc{
		Base:  Base{Owner: "alice"},
		Agent: "bot", Count: 3, Dash: "dash", NoTag: "x",
		When: time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC),
		Scope: scope{
			Repos: []repo{{Name: "acme/api", Paths: []string{"src/**"}}},
			Tools: []string{"read"},
			Max:   dur(30 * time.Minute),
			Ptr:   &repo{Name: "p"},
			Arr:   [2]repo{{Name: "a0"}, {Name: "a1"}},
			Map:   map[string]repo{"Key": {Name: "m"}, "other": {Name: "o"}},
		},
		PScope: &scope{},
		Raw:    json.RawMessage(`{"Whatever": "goes"}`),
	}
	want.Any = map[string]any{"Free": 1.0, "form": []any{true, nil, 1.5}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(doc{})); diff != "" {
		t.Errorf("Decode mismatch (-want +got):\n%s", diff)
	}
}

func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Error // Msg compared by substring
	}{
		{"bom", "\xef\xbb\xbf{}", &Error{Code: CodeBOM, Path: "$", Msg: "byte order mark"}},
		{"invalid utf8 in value", "{\"agent\": \"b\xffot\"}", &Error{Code: CodeInvalidUTF8, Path: "$", Msg: "offset 12"}},
		{"invalid utf8 in key", "{\"ag\xc3\": 1}", &Error{Code: CodeInvalidUTF8, Path: "$", Msg: "not valid UTF-8"}},
		{"lone high surrogate", `{"agent": "\ud800"}`, &Error{Code: CodeInvalidUTF8, Path: "$", Msg: "surrogate"}},
		{"lone low surrogate", `{"agent": "\udc00x"}`, &Error{Code: CodeInvalidUTF8, Path: "$", Msg: "surrogate"}},
		{"high then non-low", `{"agent": "\ud800\u0041"}`, &Error{Code: CodeInvalidUTF8, Path: "$", Msg: "surrogate"}},
		{"surrogate in key", `{"a\udfffgent": ""}`, &Error{Code: CodeInvalidUTF8, Path: "$", Msg: "offset 3"}},
		{"reversed surrogates", `{"agent": "\ude00\ud83d"}`, &Error{Code: CodeInvalidUTF8, Path: "$", Msg: "surrogate"}},
		{"escaped backslash then u", `{"agent": "\\ud800", "x": 1}`, &Error{Code: CodeUnknownField, Path: "$.x", Msg: "unknown"}},
		{"syntax", `{"agent": }`, &Error{Code: CodeSyntax, Path: "$.agent", Msg: "invalid character"}},
		{"truncated", `{"agent": "x"`, &Error{Code: CodeSyntax, Path: "$", Msg: "end of input"}},
		{"empty", ``, &Error{Code: CodeSyntax, Path: "$", Msg: "end of input"}},
		{"single quotes", `{'agent': 1}`, &Error{Code: CodeSyntax, Path: "$", Msg: "invalid character"}},
		{"trailing object", `{"agent": "a"} {"agent": "b"}`, &Error{Code: CodeTrailingData, Path: "$", Msg: "offset 15"}},
		{"trailing garbage", `{"agent": "a"}x`, &Error{Code: CodeTrailingData, Path: "$", Msg: "unexpected data"}},
		{"trailing brace", `{"agent": "a"}}`, &Error{Code: CodeTrailingData, Path: "$", Msg: "unexpected data"}},
		{"too deep", `{"any": ` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, &Error{Code: CodeTooDeep, Path: "$.any" + strings.Repeat("[0]", 31), Msg: "more than 32"}},
		{"duplicate key", `{"agent": "a", "agent": "b"}`, &Error{Code: CodeDuplicateKey, Path: "$.agent", Msg: `key "agent" appears twice`}},
		{"duplicate by escape", `{"agent": "a", "\u0061gent": "b"}`, &Error{Code: CodeDuplicateKey, Path: "$.agent", Msg: "twice"}},
		{"duplicate nested", `{"scope": {"tools": [], "tools": ["edit"]}}`, &Error{Code: CodeDuplicateKey, Path: "$.scope.tools", Msg: "twice"}},
		{"duplicate in map", `{"scope": {"map": {"k": {}, "k": {}}}}`, &Error{Code: CodeDuplicateKey, Path: "$.scope.map.k", Msg: "twice"}},
		{"duplicate in any", `{"any": {"x": 1, "x": 2}}`, &Error{Code: CodeDuplicateKey, Path: "$.any.x", Msg: "twice"}},
		{"duplicate in raw", `{"raw": [{"x": 1, "x": 2}]}`, &Error{Code: CodeDuplicateKey, Path: "$.raw[0].x", Msg: "twice"}},
		{"case variant", `{"agent": "a", "Agent": "b"}`, &Error{Code: CodeCaseVariantKey, Path: "$.Agent", Msg: `keys "agent" and "Agent"`}},
		{"case variant kelvin", "{\"any\": {\"k\": 1, \"\u212a\": 2}}", &Error{Code: CodeCaseVariantKey, Path: `$.any["\u212a"]`, Msg: "letter case"}},
		{"case variant in map", `{"scope": {"map": {"Key": {}, "kEY": {}}}}`, &Error{Code: CodeCaseVariantKey, Path: "$.scope.map.kEY", Msg: "letter case"}},
		{"case variant alone", `{"Agent": "b"}`, &Error{Code: CodeUnknownField, Path: "$.Agent", Msg: `did you mean "agent"?`}},
		{"case variant of embedded", `{"OWNER": "b"}`, &Error{Code: CodeUnknownField, Path: "$.OWNER", Msg: `did you mean "owner"?`}},
		{"unknown field", `{"agnet": "b"}`, &Error{Code: CodeUnknownField, Path: "$.agnet", Msg: `unknown field "agnet"`}},
		{"json dash field", `{"Secret": "s"}`, &Error{Code: CodeUnknownField, Path: "$.Secret", Msg: "unknown field"}},
		{"go name of tagged field", `{"Count": 1}`, &Error{Code: CodeUnknownField, Path: "$.Count", Msg: `did you mean "count"`}},
		{"embedded struct name", `{"Base": {}}`, &Error{Code: CodeUnknownField, Path: "$.Base", Msg: "unknown field"}},
		{"unexported field", `{"private": "x"}`, &Error{Code: CodeUnknownField, Path: "$.private", Msg: "unknown field"}},
		{"unknown nested", `{"scope": {"repos": [{"name": "a"}, {"name": "b", "write": true}]}}`, &Error{Code: CodeUnknownField, Path: "$.scope.repos[1].write", Msg: "unknown field"}},
		{"unknown in pointer", `{"scope": {"ptr": {"Name": "p"}}}`, &Error{Code: CodeUnknownField, Path: "$.scope.ptr.Name", Msg: `did you mean "name"`}},
		{"unknown in array", `{"scope": {"arr": [{}, {"x": 1}]}}`, &Error{Code: CodeUnknownField, Path: "$.scope.arr[1].x", Msg: "unknown field"}},
		{"unknown in map value", `{"scope": {"map": {"k": {"nme": ""}}}}`, &Error{Code: CodeUnknownField, Path: "$.scope.map.k.nme", Msg: "unknown field"}},
		{"unknown in pointer struct", `{"pscope": {"extra": 1}}`, &Error{Code: CodeUnknownField, Path: "$.pscope.extra", Msg: "unknown field"}},
		{"odd key quoted", "{\"a b\\n\": 1}", &Error{Code: CodeUnknownField, Path: `$["a b\n"]`, Msg: `"a b\n"`}},
		{"type string for int", `{"count": "3"}`, &Error{Code: CodeType, Path: "$.count", Msg: "cannot use JSON string as int"}},
		{"type nested", `{"scope": {"repos": [{"name": 7}]}}`, &Error{Code: CodeType, Path: "$.scope.repos.name", Msg: "as string"}},
		{"type unmarshaler", `{"scope": {"maxDuration": 30}}`, &Error{Code: CodeType, Path: "$.scope.maxDuration", Msg: "duration must be a string"}},
		{"type unmarshaler value", `{"scope": {"maxDuration": "soon"}}`, &Error{Code: CodeType, Path: "$.scope.maxDuration", Msg: `bad duration "soon"`}},
		{"type time", `{"when": "yesterday"}`, &Error{Code: CodeType, Path: "$.when", Msg: "parsing time"}},
		{"type object for string", `{"agent": {"x": 1}}`, &Error{Code: CodeType, Path: "$.agent", Msg: "object"}},
		{"type big number", `{"any": 1e400}`, &Error{Code: CodeType, Path: "$.any", Msg: "1e400"}},
		{"not object array", `[{"agent": "a"}]`, &Error{Code: CodeNotObject, Path: "$", Msg: "must be a JSON object"}},
		{"not object string", ` "x"`, &Error{Code: CodeNotObject, Path: "$", Msg: "object"}},
		{"not object null", `null`, &Error{Code: CodeNotObject, Path: "$", Msg: "object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v doc
			err := Decode([]byte(tt.in), &v)
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("Decode(%q) = %v; want *Error %s", tt.in, err, tt.want.Code)
			}
			if got.Code != tt.want.Code || got.Path != tt.want.Path || !strings.Contains(got.Msg, tt.want.Msg) {
				t.Errorf("Decode(%q) = %#v; want code %q path %q msg containing %q", tt.in, got, tt.want.Code, tt.want.Path, tt.want.Msg)
			}
			if diff := cmp.Diff(doc{}, v, cmp.AllowUnexported(doc{})); diff != "" {
				t.Errorf("Decode(%q) changed v on refusal:\n%s", tt.in, diff)
			}
		})
	}
}

func TestDepthBoundary(t *testing.T) {
	// 32 levels: the top object plus 31 arrays.
	ok := `{"any": ` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`
	var v doc
	if err := Decode([]byte(ok), &v); err != nil {
		t.Errorf("Decode(depth 32) = %v; want nil", err)
	}
	deep := `{"any": ` + strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32) + `}`
	if err := Decode([]byte(deep), &v); codeOf(err) != CodeTooDeep {
		t.Errorf("Decode(depth 33 objects) = %v; want %s", err, CodeTooDeep)
	}
	// A huge nesting is refused without recursing through all of it.
	huge := strings.Repeat("[", 100000)
	var a any
	if err := Decode([]byte(huge), &a); codeOf(err) != CodeTooDeep {
		t.Errorf("Decode(100000 [) = %v; want %s", err, CodeTooDeep)
	}
}

func TestErrorString(t *testing.T) {
	var v doc
	err := Decode([]byte(`{"scope": {"tools": [], "tools": []}}`), &v)
	want := `strictjson: duplicate_key at $.scope.tools: key "tools" appears twice in the same object; send each key once`
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v; want %q", err, want)
	}
}

func TestNonStructTargets(t *testing.T) {
	var m map[string]int
	if err := Decode([]byte(`{"a": 1, "A": 2}`), &m); codeOf(err) != CodeCaseVariantKey {
		t.Errorf("Decode(map case variant) = %v; want %s", err, CodeCaseVariantKey)
	}
	if err := Decode([]byte(`{"a": 1, "b": 2}`), &m); err != nil {
		t.Errorf("Decode(map) = %v", err)
	}
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 2}, m); diff != "" {
		t.Errorf("map mismatch:\n%s", diff)
	}
	var s []repo
	if err := Decode([]byte(`[{"name": "x", "nam": 1}]`), &s); codeOf(err) != CodeUnknownField {
		t.Errorf("Decode(slice of struct) = %v; want %s", err, CodeUnknownField)
	}
	if err := Decode([]byte(`{}`), doc{}); err == nil || errors.As(err, new(*Error)) {
		t.Errorf("Decode(non-pointer) = %v; want a plain error", err)
	}
	var n *doc
	if err := Decode([]byte(`{}`), n); err == nil {
		t.Errorf("Decode(nil pointer) = nil; want an error")
	}
}

// Ambiguous embedded fields are ignored by encoding/json, so they are
// unknown here.
type A struct{ X int }
type B struct{ X int }
type ambiguous struct {
	A
	B
	Y int `json:"y"`
}

func TestEmbeddedAmbiguous(t *testing.T) {
	var v ambiguous
	if err := Decode([]byte(`{"X": 1}`), &v); codeOf(err) != CodeUnknownField {
		t.Errorf("Decode(ambiguous) = %v; want %s", err, CodeUnknownField)
	}
	if err := Decode([]byte(`{"y": 1}`), &v); err != nil {
		t.Errorf("Decode = %v", err)
	}
}

func TestFoldKey(t *testing.T) {
	words := []string{"agent", "Agent", "AGENT", "k", "K", "\u212a", "s", "\u017f", "S", "straße", "STRASSE", "ǅ", "ǆ", "Ǆ", "µ", "μ", "Μ", "i", "İ", "ı", ""}
	for _, a := range words {
		for _, b := range words {
			if got, want := foldKey(a) == foldKey(b), strings.EqualFold(a, b); got != want {
				t.Errorf("foldKey(%q) == foldKey(%q) is %v; strings.EqualFold is %v", a, b, got, want)
			}
		}
	}
}

func codeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"agent": "a", "scope": {"repos": [{"name": "x"}], "maxDuration": "1m"}}`,
		`{"agent": "a", "Agent": "b"}`,
		`{"any": {"x": [1, 2, {"y": null}]}}`,
		`{"agent": "\ud83d\ude00"}`,
		"\xef\xbb\xbf{}",
		`{} x`,
		`[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v doc
		err := Decode(data, &v)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) = %v; want *Error", data, err)
			}
			return
		}
		// Whatever strict decoding accepts, encoding/json accepts too and
		// reads the same way.
		var loose doc
		if err := json.Unmarshal(data, &loose); err != nil {
			t.Fatalf("strict accepted %q but json.Unmarshal: %v", data, err)
		}
		if diff := cmp.Diff(loose, v, cmp.AllowUnexported(doc{})); diff != "" {
			t.Fatalf("strict and loose differ on %q:\n%s", data, diff)
		}
		// The input is one valid JSON value.
		if !json.Valid(data) {
			t.Fatalf("strict accepted invalid JSON %q", data)
		}
	})
}
