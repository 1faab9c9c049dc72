package policy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxInputDepth bounds the nesting of a policy input.
const maxInputDepth = 64

// parseInput turns JSON bytes into OPA's AST value directly, without the
// detour through encoding/json's interface{} tree that ast.ValueFromReader
// takes (which was more than half of a decision's cost; see
// docs/performance.md). It accepts exactly RFC 8259 JSON; numbers keep
// their text, as OPA's own parser keeps them.
func parseInput(b []byte) (ast.Value, error) {
	p := &jsonParser{b: b}
	t, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, p.errorf("data after the JSON value")
	}
	return t.Value, nil
}

type jsonParser struct {
	b []byte
	i int
	// strs shares one term per distinct short string: keys and values
	// like "kind", "tool", "allow" repeat in every history entry. OPA's
	// terms are immutable once built, so sharing them is safe (OPA
	// interns terms itself).
	strs map[string]*ast.Term
}

func (p *jsonParser) strTerm(s []byte) *ast.Term {
	if len(s) > 64 {
		return ast.StringTerm(string(s))
	}
	if t, ok := p.strs[string(s)]; ok {
		return t
	}
	if p.strs == nil {
		p.strs = make(map[string]*ast.Term, 64)
	}
	t := ast.StringTerm(string(s))
	p.strs[string(s)] = t
	return t
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("input JSON at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*ast.Term, error) {
	if depth > maxInputDepth {
		return nil, p.errorf("nested deeper than %d", maxInputDepth)
	}
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.errorf("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		p.i++
		pairs := make([][2]*ast.Term, 0, 8)
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return ast.NewTerm(ast.NewObject()), nil
		}
		for {
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, p.errorf("want an object key")
			}
			k, err := p.strBytes()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, p.errorf("want ':' after an object key")
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, [2]*ast.Term{p.strTerm(k), v})
			p.ws()
			if p.i >= len(p.b) {
				return nil, p.errorf("unexpected end in an object")
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] == '}' {
				p.i++
				return ast.NewTerm(ast.NewObject(pairs...)), nil
			}
			return nil, p.errorf("want ',' or '}' in an object")
		}
	case c == '[':
		p.i++
		terms := make([]*ast.Term, 0, 8)
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return ast.NewTerm(ast.NewArray()), nil
		}
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			terms = append(terms, v)
			p.ws()
			if p.i >= len(p.b) {
				return nil, p.errorf("unexpected end in an array")
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] == ']' {
				p.i++
				return ast.NewTerm(ast.NewArray(terms...)), nil
			}
			return nil, p.errorf("want ',' or ']' in an array")
		}
	case c == '"':
		s, err := p.strBytes()
		if err != nil {
			return nil, err
		}
		return p.strTerm(s), nil
	case c == 't':
		return p.literal("true", ast.InternedTerm(true))
	case c == 'f':
		return p.literal("false", ast.InternedTerm(false))
	case c == 'n':
		return p.literal("null", ast.InternedNullTerm)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.errorf("unexpected %q", p.b[p.i])
}

func (p *jsonParser) literal(word string, t *ast.Term) (*ast.Term, error) {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return nil, p.errorf("want %s", word)
	}
	p.i += len(word)
	return t, nil
}

// number scans an RFC 8259 number.
func (p *jsonParser) number() (*ast.Term, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.errorf("bad number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	if _, err := strconv.ParseFloat(string(p.b[start:p.i]), 64); err != nil {
		return nil, p.errorf("number %s is out of range", p.b[start:p.i])
	}
	return ast.NumberTerm(json.Number(p.b[start:p.i])), nil
}

// strBytes reads a string starting at its opening quote.
func (p *jsonParser) strBytes() ([]byte, error) {
	p.i++ // the quote
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return nil, p.errorf("invalid UTF-8 in a string")
			}
			return s, nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return nil, p.errorf("control character in a string")
		}
		p.i++
	}
	return nil, p.errorf("unterminated string")
}

// strSlow finishes a string that has escapes.
func (p *jsonParser) strSlow(start int) ([]byte, error) {
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return nil, p.errorf("invalid UTF-8 in a string")
			}
			return buf, nil
		case c < 0x20:
			return nil, p.errorf("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.errorf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair makes one rune; anything else is U+FFFD, and a
				// following escape stays for the next round (as
				// encoding/json does).
				d := utf8.RuneError
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if r2, ok := p.hex4(); ok {
						d = utf16.DecodeRune(r, r2)
					}
					if d == utf8.RuneError {
						p.i = save
					}
				}
				r = d
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, p.errorf("bad escape \\%c", e)
		}
	}
	return nil, p.errorf("unterminated string")
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}
