package driver

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// TestDecodeBase64 accepts what base64 and base64 -w0 write and refuses
// the rest, which the decoder used to read leniently into another value.
func TestDecodeBase64(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789"), 30) // 400 base64 characters
	enc := base64.StdEncoding.EncodeToString(long)
	wrapped := wrap76(enc)
	for _, tc := range []struct {
		name, text string
		want       []byte
	}{
		{"base64 -w0", "QQ==", []byte("A")},
		{"base64, one line", "QQ==\n", []byte("A")},
		{"base64 wrapped at 76", wrapped + "\n", long},
		{"wrapped, no final newline", wrapped, long},
		{"base64 -w0 of a long value", enc, long},
		{"base64 -w0 with a newline", enc + "\n", long},
	} {
		got, err := DecodeBase64([]byte(tc.text))
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got %q, %v", tc.name, got, err)
		}
	}
	for _, tc := range []struct{ name, text string }{
		{"extra padding and a newline inside", "QQ=====\n=="},
		{"extra padding", "QQ==="},
		{"missing padding", "QQ"},
		{"padding in the middle", "QQ==QQ=="},
		{"non-zero trailing bits", "QR=="},
		{"short lines", "aGVs\nbG8=\n"},
		{"CRLF", "QQ==\r\n"},
		{"carriage return inside", "QQ\r=="},
		{"two final newlines", "QQ==\n\n"},
		{"space", "QQ== "},
		{"tab inside", "QQ\t=="},
		{"URL alphabet", "-_8="},
		{"wrapped at 64 (openssl)", strings.Join([]string{enc[:64], enc[64:128]}, "\n")},
		{"wrapped, one long line", enc[:76] + "\n" + enc[76:]},
		{"wrapped, empty line", enc[:76] + "\n\n" + enc[76:152]},
	} {
		if got, err := DecodeBase64([]byte(tc.text)); err == nil {
			t.Errorf("%s: %q accepted as %q", tc.name, tc.text, got)
		}
	}
}
