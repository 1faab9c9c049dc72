package policy

import (
	"bytes"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestParseInput: the direct parser gives OPA's own value for valid JSON
// and refuses what is not JSON.
func TestParseInput(t *testing.T) {
	valid := []string{
		`{}`, `[]`, `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, ` { "x" : -0.5e+10 , "y" : [ 1 , 2 ] } `,
		`"\u00e9\ud83d\ude00\n\t\"\\\/"`, `"\ud800"`, `"\ud800\u0041"`, `0`, `-1`, `1E3`, `{"a":{"a":{"a":[[[]]]}}}`,
		`{"k":"é ünïcode 😀"}`, `123456789012345678901234567890`,
	}
	for _, s := range valid {
		want, err := ast.ValueFromReader(bytes.NewReader([]byte(s)))
		if err != nil {
			t.Fatalf("OPA refuses %s: %v", s, err)
		}
		got, err := parseInput([]byte(s))
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if got.Compare(want) != 0 {
			t.Errorf("%s: got %v, want %v", s, got, want)
		}
	}
	invalid := []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `tru`, `"abc`, "\"a\x01b\"", `"\x"`, `"\u12"`,
		`{"a":1} x`, `{a:1}`, `'a'`, "\"\xff\"", `[1 2]`, `NaN`}
	for _, s := range invalid {
		if _, err := parseInput([]byte(s)); err == nil {
			t.Errorf("%q: parsed, want an error", s)
		}
	}
	deep := bytes.Repeat([]byte("["), maxInputDepth+2)
	if _, err := parseInput(deep); err == nil {
		t.Error("too deep: parsed")
	}
}

// FuzzParseInput checks the direct parser against OPA's on any input
// both accept, and that it never accepts what OPA refuses.
func FuzzParseInput(f *testing.F) {
	for _, s := range []string{`{"a":[1,"b",{"c":null}]}`, `"\ud83d\ude00"`, `-1.5e3`, `[true,false]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseInput(b)
		want, werr := ast.ValueFromReader(bytes.NewReader(b))
		if err != nil {
			return // stricter than OPA is fine (depth, invalid UTF-8)
		}
		if werr != nil {
			t.Fatalf("%q: accepted, OPA refuses: %v", b, werr)
		}
		if got.Compare(want) != 0 {
			t.Fatalf("%q: got %v, want %v", b, got, want)
		}
	})
}

// BenchmarkParseInput is writ's direct JSON → AST parser on an input with
// a 100-action history, beside OPA's ast.ValueFromReader on the same bytes.
func BenchmarkParseInput(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"action":{"kind":"tool","name":"shell:test"},"via":"api","enforced":true,"run":{"id":"01jbench","profile":"refactor","scope":{"repos":[{"name":"acme/api","base":"main","write":true,"paths":["src/**"]}],"tools":["read","edit"]}},"history":{"actions":[`)
	for i := range 100 {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"kind":"tool","name":"shell:test","decision":"allow","via":"api","time":"2026-11-25T20:00:00.123456789Z","enforced":true}`)
	}
	buf.WriteString(`],"counts":{"total":100,"lastMinute":60,"denials":0,"children":0},"allowed":{"shell:test":true}},"context":{"time":"2026-11-25T20:00:00Z","hour":20,"toolInScope":true}}`)
	in := buf.Bytes()
	b.Run("writ", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseInput(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("opa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ast.ValueFromReader(bytes.NewReader(in)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
