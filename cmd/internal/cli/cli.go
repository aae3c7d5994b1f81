package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Env is the KPROBE_ environment fallback of a string flag: KPROBE_name, or def when unset.
func Env(name, def string) string {
	if v, ok := os.LookupEnv("KPROBE_" + name); ok {
		return v
	}
	return def
}

// envValue is a flag whose default may come from a KPROBE_ variable; a value there
// that does not parse is kept as err until Parse reports it (or the flag replaces it).
type envValue struct {
	flag.Value
	env string
	err error
}

// String copes with the zero envValue that flag.PrintDefaults makes.
func (v *envValue) String() string {
	if v.Value == nil {
		return ""
	}
	return v.Value.String()
}

func (v *envValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		return err
	}
	v.err = nil // the command line wins over the environment
	return nil
}

// IsBoolFlag keeps "--flag" without a value working for boolean flags.
func (v *envValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func register(fs *flag.FlagSet, value flag.Value, name, env, usage string) {
	v := &envValue{Value: value, env: "KPROBE_" + env}
	if s, ok := os.LookupEnv(v.env); ok {
		if err := value.Set(s); err != nil {
			v.err = fmt.Errorf("%s=%q: %v", v.env, s, unwrapParse(err))
		}
	}
	fs.Var(v, name, usage+" (env "+v.env+")")
}

// unwrapParse drops strconv's "strconv.ParseBool: parsing "x": " prefix.
func unwrapParse(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// DurationVar is fs.DurationVar with the fallback KPROBE_env.
func DurationVar(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	*p = def
	register(fs, (*durationValue)(p), name, env, usage)
}

// BoolVar is fs.BoolVar with the fallback KPROBE_env (true, false, 1, 0 ...).
func BoolVar(fs *flag.FlagSet, p *bool, name, env string, def bool, usage string) {
	*p = def
	register(fs, (*boolValue)(p), name, env, usage)
}

type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 2s or 500ms")
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return (*time.Duration)(d).String() }

type boolValue bool

func (b *boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*b = boolValue(v)
	return nil
}

func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

// Parse parses args into fs, whose name is the command as typed ("kprobe-agent record").
// -h and --help print fs.Usage on help and return flag.ErrHelp. A bad flag, a positional
// argument (none is taken: see ParseArgs) or a bad KPROBE_ value is one line with a hint.
func Parse(fs *flag.FlagSet, args []string, help io.Writer) error {
	rest, err := ParseArgs(fs, args, help)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected argument %q (%s takes flags only; %s --help lists them)", rest[0], fs.Name(), fs.Name())
	}
	return err
}

// ParseArgs is Parse for a command that takes arguments after its flags: it returns them.
func ParseArgs(fs *flag.FlagSet, args []string, help io.Writer) ([]string, error) {
	// The flag package would print the error and the whole usage; the caller prints
	// the error once, as one line.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(help)
		fs.Usage()
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w (%s --help lists the flags)", err, fs.Name())
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := f.Value.(*envValue); ok && v.err != nil && envErr == nil {
			envErr = v.err
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	return fs.Args(), nil
}

// Usage returns a fs.Usage that prints head and then the flags, to fs.Output().
func Usage(fs *flag.FlagSet, head string) func() {
	return func() {
		fmt.Fprint(fs.Output(), head)
		fs.PrintDefaults()
	}
}
