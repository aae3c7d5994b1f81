package apiflag

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kprobe/kprobe/api/client"
)

// Client is the flags of a command that reads through the API.
type Client struct {
	Addr       string
	TokenFile  string
	CA         string
	Cert, Key  string
	ServerName string
	TLS        bool
}

// Register adds --api, --api-token-file, --api-ca, --api-cert, --api-key,
// --api-server-name and --api-tls to fs.
func (c *Client) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "api", os.Getenv("KPROBE_API"), "a kprobe API: host:port, https://host:port or unix:PATH (env KPROBE_API)")
	fs.StringVar(&c.TokenFile, "api-token-file", os.Getenv("KPROBE_API_TOKEN_FILE"), "file holding the bearer token for --api (or set KPROBE_API_TOKEN)")
	fs.StringVar(&c.CA, "api-ca", os.Getenv("KPROBE_API_CA"), "CA certificate (PEM) that signed the API server's certificate; implies TLS")
	fs.StringVar(&c.Cert, "api-cert", os.Getenv("KPROBE_API_CERT"), "client certificate (PEM) for an API that asks for one (mTLS)")
	fs.StringVar(&c.Key, "api-key", os.Getenv("KPROBE_API_KEY"), "key of --api-cert")
	fs.StringVar(&c.ServerName, "api-server-name", "", "name to check in the API server's certificate (default: the host of --api)")
	fs.BoolVar(&c.TLS, "api-tls", false, "speak TLS to --api HOST:PORT, verified with the system's roots (implied by https:// and --api-ca)")
}

// Set reports whether an API address was given.
func (c *Client) Set() bool { return c.Addr != "" }

// Options resolves the flags: the token comes from KPROBE_API_TOKEN or the token file
// (its first line that is not blank or a # comment).
func (c *Client) Options() (client.Options, error) {
	o := client.Options{Addr: c.Addr, TLS: c.TLS, CAFile: c.CA, CertFile: c.Cert, KeyFile: c.Key, ServerName: c.ServerName}
	env, inEnv := os.LookupEnv("KPROBE_API_TOKEN")
	switch {
	case inEnv && c.TokenFile != "":
		return o, errors.New("give the API token in KPROBE_API_TOKEN or --api-token-file, not both")
	case inEnv:
		if o.Token = strings.TrimSpace(env); o.Token == "" {
			return o, errors.New("KPROBE_API_TOKEN is set but empty")
		}
	case c.TokenFile != "":
		t, err := readToken(c.TokenFile)
		if err != nil {
			return o, err
		}
		o.Token = t
	}
	return o, nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--api-token-file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	return "", fmt.Errorf("--api-token-file %s: no token in it", path)
}

// Dial connects and checks that the API answers, so a wrong address or token fails here,
// in one line, rather than at the first query.
func (c *Client) Dial(ctx context.Context) (*client.Client, error) {
	o, err := c.Options()
	if err != nil {
		return nil, err
	}
	return DialOptions(ctx, o)
}

// DialOptions is Dial for resolved options.
func DialOptions(ctx context.Context, o client.Options) (*client.Client, error) {
	cl, err := client.New(o)
	if err != nil {
		return nil, err
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}
