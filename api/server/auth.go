package server

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"connectrpc.com/connect"
)

// Auth decides who may call the API: a bearer token from the token file, or a client
// certificate that TLS verified against the client CA. Either suffices.
type Auth struct {
	tokens [][sha256.Size]byte
	certs  bool
}

// minTokenLen keeps guessable tokens out of a token file.
const minTokenLen = 16

// NewAuth accepts the tokens whose SHA-256 digests are given and, when certs is true, any
// client certificate the TLS listener verified.
func NewAuth(digests [][sha256.Size]byte, certs bool) (*Auth, error) {
	if len(digests) == 0 && !certs {
		return nil, errors.New("authentication needs tokens or client certificates")
	}
	return &Auth{tokens: digests, certs: certs}, nil
}

// LoadTokenFile reads a token file: one token per line, either the token itself or
// "sha256:" and the hex digest of it (so the file need not hold the secret); blank lines
// and lines starting with # are skipped.
func LoadTokenFile(path string) ([][sha256.Size]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api token file: %w", err)
	}
	defer f.Close()
	d, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("api token file %s: %w", path, err)
	}
	return d, nil
}

// ParseTokens reads tokens as LoadTokenFile does.
func ParseTokens(r io.Reader) ([][sha256.Size]byte, error) {
	var out [][sha256.Size]byte
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var d [sha256.Size]byte
		if hexd, ok := strings.CutPrefix(line, "sha256:"); ok {
			b, err := hex.DecodeString(hexd)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("line %d: want sha256: and 64 hex digits", n)
			}
			copy(d[:], b)
		} else {
			// The line's content is a secret: name the line, never echo it.
			if len(line) < minTokenLen {
				return nil, fmt.Errorf("line %d: token shorter than %d characters (generate one with 'openssl rand -hex 32')", n, minTokenLen)
			}
			d = sha256.Sum256([]byte(line))
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no tokens in it")
	}
	return out, nil
}

var errNoCredentials = errors.New("no credentials: send 'Authorization: Bearer TOKEN' or a client certificate")

// check returns who the caller is, or why it is refused.
func (a *Auth) check(r *http.Request) (string, error) {
	if a.certs && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return "cert:" + r.TLS.VerifiedChains[0][0].Subject.String(), nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", errNoCredentials
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", errors.New("malformed Authorization header: want 'Bearer TOKEN'")
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	// Compare with every token, so the time taken says nothing about which one nearly matched.
	match := 0
	for i := range a.tokens {
		match |= subtle.ConstantTimeCompare(got[:], a.tokens[i][:])
	}
	if match != 1 {
		return "", errors.New("invalid token")
	}
	return "token:" + hex.EncodeToString(got[:6]), nil
}

// guard authenticates and rate-limits every request before it reaches a handler, and
// answers refusals in the caller's protocol (gRPC, gRPC-Web or Connect).
func (s *Server) guard(next http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	refuse := func(w http.ResponseWriter, r *http.Request, err *connect.Error) {
		if err.Code() == connect.CodeUnauthenticated {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kprobe"`)
		}
		if ew.IsSupported(r) {
			_ = ew.Write(w, r, err)
			return
		}
		status := http.StatusTooManyRequests
		if err.Code() == connect.CodeUnauthenticated {
			status = http.StatusUnauthorized
		}
		http.Error(w, err.Message(), status)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "addr:" + remoteHost(r)
		if s.opts.Auth != nil {
			id, err := s.opts.Auth.check(r)
			if err != nil {
				refuse(w, r, connect.NewError(connect.CodeUnauthenticated, err))
				return
			}
			who = id
		}
		if s.limiter != nil && !s.limiter.allow(who) {
			refuse(w, r, connect.NewError(connect.CodeResourceExhausted,
				fmt.Errorf("rate limit: more than %g requests/s from %s", s.opts.RateLimit, who)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
