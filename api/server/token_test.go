package server

import (
	"strings"
	"testing"
)

func TestPageTokenRoundTrip(t *testing.T) {
	for _, tok := range []pageToken{{}, {TsNs: 1_790_000_000_000_000_000, ID: 1<<64 - 1, Sent: 42}, {TsNs: -5, ID: 3}} {
		got, err := decodeToken(tok.encode())
		if err != nil || got != tok {
			t.Errorf("decode(encode(%+v)) = %+v, %v", tok, got, err)
		}
	}
}

// FuzzDecodeToken: a page token comes from the caller; any string gives a token or
// errBadToken, never a panic, and a token accepted re-encodes to itself.
func FuzzDecodeToken(f *testing.F) {
	f.Add(pageToken{TsNs: 10, ID: 7, Sent: 3}.encode())
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := decodeToken(s)
		if err != nil {
			if err != errBadToken {
				t.Fatalf("error %v is not errBadToken", err)
			}
			return
		}
		if again, err := decodeToken(tok.encode()); err != nil || again != tok {
			t.Fatalf("accepted %q as %+v, which does not round trip (%+v, %v)", s, tok, again, err)
		}
	})
}

// FuzzParseTokens: a token file is outside input; any content parses or is refused with
// a message that never repeats a line of it.
func FuzzParseTokens(f *testing.F) {
	f.Add("# c\n0123456789abcdef0123\nsha256:" + strings.Repeat("ab", 32) + "\n")
	f.Add("short\n")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTokens(strings.NewReader(s))
		if err == nil && len(d) == 0 {
			t.Fatal("no error and no tokens")
		}
		if err != nil {
			for _, line := range strings.Split(s, "\n") {
				if l := strings.TrimSpace(line); len(l) >= 8 && strings.Contains(err.Error(), l) {
					t.Fatalf("the error %q repeats a line of the file", err)
				}
			}
		}
	})
}
