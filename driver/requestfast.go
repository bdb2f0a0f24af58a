package driver

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/docker/go-plugins-helpers/secrets"
)

// fastDecode decodes the request bodies the engine sends without
// reflection: one object of the Request's own keys, spelled exactly, each
// at most once, with plain strings (no escapes, valid UTF-8) and label
// objects of plain strings; ServiceEndpointSpec, when present, is handed
// to json.Unmarshal on its own. Anything else (an escape, null, an unknown
// or differently cased key, a repeated key) returns false without a
// verdict, and the caller decodes the body with json.Unmarshal, which then
// decides. Whatever this accepts is valid JSON that json.Unmarshal decodes
// to the same Request (FuzzDecodeRequestMatchesStream compares them).
// req may be partly filled when it returns false.
func fastDecode(b []byte, req *Request) bool {
	p := fastParser{b: b}
	p.space()
	if !p.take('{') {
		return false
	}
	p.space()
	if !p.take('}') {
		var seen uint16
		for {
			key, ok := p.plain()
			if !ok {
				return false
			}
			p.space()
			if !p.take(':') {
				return false
			}
			p.space()
			var bit uint16
			switch string(key) {
			case "SecretName":
				bit, ok = 1<<0, p.str(&req.SecretName)
			case "SecretLabels":
				bit, ok = 1<<1, p.labels(&req.SecretLabels)
			case "ServiceHostname":
				bit, ok = 1<<2, p.str(&req.ServiceHostname)
			case "ServiceName":
				bit, ok = 1<<3, p.str(&req.ServiceName)
			case "ServiceID":
				bit, ok = 1<<4, p.str(&req.ServiceID)
			case "ServiceLabels":
				bit, ok = 1<<5, p.labels(&req.ServiceLabels)
			case "TaskID":
				bit, ok = 1<<6, p.str(&req.TaskID)
			case "TaskName":
				bit, ok = 1<<7, p.str(&req.TaskName)
			case "TaskImage":
				bit, ok = 1<<8, p.str(&req.TaskImage)
			case "NodeID":
				bit, ok = 1<<9, p.str(&req.NodeID)
			case "ServiceEndpointSpec":
				bit, ok = 1<<10, p.endpoint(&req.ServiceEndpointSpec)
			default:
				return false
			}
			if !ok || seen&bit != 0 {
				return false
			}
			seen |= bit
			p.space()
			if p.take(',') {
				p.space()
				continue
			}
			if p.take('}') {
				break
			}
			return false
		}
	}
	p.space()
	return p.i == len(b)
}

type fastParser struct {
	b []byte
	i int
}

// space skips JSON white space.
func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) take(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// plain reads a string without escapes or control characters, in valid
// UTF-8: its bytes are its value. It returns a slice of the body.
func (p *fastParser) plain() ([]byte, bool) {
	if !p.take('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c < 0x20 || c == '\\':
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (p *fastParser) str(dst *string) bool {
	s, ok := p.plain()
	if ok {
		*dst = string(s)
	}
	return ok
}

// labels reads an object of plain strings into a new map, as
// json.Unmarshal does for a nil map (an empty object gives an empty map;
// a repeated key keeps its last value).
func (p *fastParser) labels(dst *map[string]string) bool {
	if !p.take('{') {
		return false
	}
	m := map[string]string{}
	p.space()
	if !p.take('}') {
		for {
			k, ok := p.plain()
			if !ok {
				return false
			}
			p.space()
			if !p.take(':') {
				return false
			}
			p.space()
			v, ok := p.plain()
			if !ok {
				return false
			}
			m[string(k)] = string(v)
			p.space()
			if p.take(',') {
				p.space()
				continue
			}
			if p.take('}') {
				break
			}
			return false
		}
	}
	*dst = m
	return true
}

// endpoint hands the value to json.Unmarshal, which checks it and decodes
// it as it would inside the whole body (a fresh *EndpointSpec, or nil for
// null).
func (p *fastParser) endpoint(dst **secrets.EndpointSpec) bool {
	end := skipValue(p.b, p.i)
	if end < 0 {
		return false
	}
	var spec *secrets.EndpointSpec
	if json.Unmarshal(p.b[p.i:end], &spec) != nil {
		return false
	}
	*dst, p.i = spec, end
	return true
}

// skipValue returns where the JSON value starting at i ends, or -1. It only
// finds the end (strings and nesting); the caller has the value checked.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return -1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of a scalar at the end of its object
			}
			depth--
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				return i
			}
		default:
			continue
		}
		if depth == 0 && (b[i] == '"' || b[i] == '}' || b[i] == ']') {
			return i + 1
		}
	}
	if depth == 0 {
		return len(b)
	}
	return -1
}
