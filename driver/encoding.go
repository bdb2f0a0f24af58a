package driver

import (
	"encoding/base64"
	"errors"
	"strings"
)

// base64LineLen is where base64(1) wraps its output by default.
const base64LineLen = 76

// errNotBase64 is the one cause DecodeBase64 gives: which rule broke is not
// said, as the text is a secret's stored value.
var errNotBase64 = errors.New("not valid base64 as base64(1) writes it: standard alphabet, = padding, lines of 76 characters or one line (base64 -w0)")

// DecodeBase64 decodes the text base64 and base64 -w0 write, and nothing
// else: the standard alphabet with the padding it needs, in lines of exactly
// 76 characters (the last one shorter or equal) separated by "\n", or in one
// line, optionally ending with one "\n". Go's decoder on its own skips every
// "\r" and "\n" and RawStdEncoding after trimming '=' accepts any padding,
// so "QQ=====\n==" was served as "A": a value that is not what the operator
// stored is refused rather than guessed at.
func DecodeBase64(text []byte) ([]byte, error) {
	s := strings.TrimSuffix(string(text), "\n")
	if strings.Contains(s, "\n") {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			last := i == len(lines)-1
			if (!last && len(l) != base64LineLen) || (last && (l == "" || len(l) > base64LineLen)) {
				return nil, errNotBase64
			}
		}
		s = strings.Join(lines, "")
	}
	// The decoder ignores '\r' and '\n'; what is left of either here is
	// not base64(1)'s.
	if strings.ContainsAny(s, "\r\n") || len(s)%4 != 0 {
		return nil, errNotBase64
	}
	out, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errNotBase64
	}
	return out, nil
}
