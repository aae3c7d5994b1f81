package eventlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/unix"
)

// A small purego binding to libchdb.so's C API (chdb.h). chdb-go is not used because it
// dlopens the library in an init function and panics when it is missing, so any binary
// linking it could not start without the 560 MB library. Here the library is opened only
// when the embedded store is opened.

// ErrEngineInUse is returned when the process's one embedded engine is already open on a
// different data directory: chDB allows one engine and one data path per process.
var ErrEngineInUse = errors.New("embedded ClickHouse engine already open on another data directory (chDB allows one per process)")

// LibraryPath is where the embedded engine is loaded from: $CHDB_LIB_PATH, or else the
// cache that scripts/chdb/fetch.sh fills (${KPROBE_CACHE:-$HOME/.cache/kprobe}/chdb/libchdb.so).
func LibraryPath() string {
	if p := os.Getenv("CHDB_LIB_PATH"); p != "" {
		return p
	}
	cache := os.Getenv("KPROBE_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		cache = filepath.Join(home, ".cache", "kprobe")
	}
	return filepath.Join(cache, "chdb", "libchdb.so")
}

// chdbLib holds the resolved C entry points. Handles are opaque C pointers.
type chdbLib struct {
	path string

	connect      func(argc int32, argv unsafe.Pointer) unsafe.Pointer // chdb_connection*
	closeConn    func(conn unsafe.Pointer)
	queryN       func(conn, query unsafe.Pointer, queryLen uintptr, format unsafe.Pointer, formatLen uintptr) unsafe.Pointer
	queryParamsN func(conn, query unsafe.Pointer, queryLen uintptr, format unsafe.Pointer, formatLen uintptr,
		names, nameLens, values, valueLens unsafe.Pointer, count uintptr) unsafe.Pointer
	resultBuffer  func(res unsafe.Pointer) unsafe.Pointer
	resultLength  func(res unsafe.Pointer) uintptr
	resultError   func(res unsafe.Pointer) unsafe.Pointer
	destroyResult func(res unsafe.Pointer)
	// Optional: older libraries lack it.
	setSignalHandlers func(enabled int32)
}

var loaded struct {
	mu  sync.Mutex
	lib *chdbLib
}

// loadLibrary dlopens libchdb.so once per process.
func loadLibrary(path string) (*chdbLib, error) {
	loaded.mu.Lock()
	defer loaded.mu.Unlock()
	if loaded.lib != nil {
		if loaded.lib.path != path {
			return nil, fmt.Errorf("embedded ClickHouse engine already loaded from %s, not %s", loaded.lib.path, path)
		}
		return loaded.lib, nil
	}
	fi, err := os.Stat(path)
	if err == nil && !fi.IsDir() {
		err = unix.Access(path, unix.R_OK)
	}
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("embedded ClickHouse engine (libchdb.so) at %s: permission denied: make it readable to this user, or set CHDB_LIB_PATH to a copy it can read", path)
	}
	if err != nil || fi.IsDir() {
		return nil, fmt.Errorf("embedded ClickHouse engine (libchdb.so) not found at %s: run `make chdb` or scripts/chdb/fetch.sh, or set CHDB_LIB_PATH", path)
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("loading embedded ClickHouse engine from %s (%v): run `make chdb` or scripts/chdb/fetch.sh to fetch a good copy, or set CHDB_LIB_PATH", path, err)
	}
	lib := &chdbLib{path: path}
	syms := []struct {
		fn       any
		name     string
		optional bool
	}{
		{&lib.connect, "chdb_connect", false},
		{&lib.closeConn, "chdb_close_conn", false},
		{&lib.queryN, "chdb_query_n", false},
		{&lib.queryParamsN, "chdb_query_with_params_n", false},
		{&lib.resultBuffer, "chdb_result_buffer", false},
		{&lib.resultLength, "chdb_result_length", false},
		{&lib.resultError, "chdb_result_error", false},
		{&lib.destroyResult, "chdb_destroy_query_result", false},
		{&lib.setSignalHandlers, "chdb_set_signal_handlers_enabled", true},
	}
	for _, s := range syms {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil || addr == 0 {
			if s.optional {
				continue
			}
			// Dlclose is skipped on purpose: unloading a half-used C++ runtime is riskier
			// than leaking one mapping in a process that is about to report an error.
			return nil, fmt.Errorf("%s lacks %s: it is too old or not libchdb (want chDB >= 26.5): run scripts/chdb/fetch.sh", path, s.name)
		}
		purego.RegisterFunc(s.fn, addr)
	}
	loaded.lib = lib
	return lib, nil
}

// chdbConn is one connection to the process's engine. chDB runs one statement at a time
// per connection, so calls are serialised.
type chdbConn struct {
	lib  *chdbLib
	mu   sync.Mutex
	conn unsafe.Pointer // chdb_connection*; nil once closed
}

// connectEngine boots the engine on dir.
func connectEngine(lib *chdbLib, dir string) (*chdbConn, error) {
	if lib.setSignalHandlers != nil {
		// The Go runtime owns SIGSEGV, SIGPROF, SIGURG and friends: ClickHouse's handlers
		// would turn a Go nil-pointer panic into an engine crash report.
		lib.setSignalHandlers(0)
	}
	// argv is Go memory holding pointers to Go memory: C may keep them only while each
	// target is pinned (the rule cgo's checker enforces; purego passes them unchecked).
	var pin runtime.Pinner
	defer pin.Unpin()
	argv := cStrings(&pin, []string{"kprobe", "--path=" + dir}, nil)
	c := lib.connect(int32(len(argv)-1), unsafe.Pointer(&argv[0]))
	runtime.KeepAlive(argv)
	if c == nil || *(*unsafe.Pointer)(c) == nil {
		return nil, errors.New("engine refused to start")
	}
	cc := &chdbConn{lib: lib, conn: c}
	// Settings given as connect arguments are ignored by chDB 26.5; SET lasts for the
	// connection, and the process has only this one. LowCardinality columns come back as
	// their plain type: Go shares repeated strings itself (columns.go).
	for _, set := range []string{insertSetting + " = 0", "low_cardinality_allow_in_native_format = 0"} {
		if err := cc.query([]byte("SET "+set), "Native", nil, nil); err != nil {
			cc.close()
			return nil, err
		}
	}
	return cc, nil
}

func (c *chdbConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.lib.closeConn(c.conn)
		c.conn = nil
	}
}

// query runs one statement and hands the raw output (in format) to read, which must not
// keep the slice: it is C memory freed when read returns.
func (c *chdbConn) query(sql []byte, format string, params []param, read func([]byte) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return errors.New("embedded ClickHouse engine is closed")
	}
	if len(sql) == 0 {
		return errors.New("empty statement")
	}
	handle := *(*unsafe.Pointer)(c.conn)
	fmtb := append([]byte(format), 0)
	var res unsafe.Pointer
	if len(params) == 0 {
		res = c.lib.queryN(handle, unsafe.Pointer(&sql[0]), uintptr(len(sql)), unsafe.Pointer(&fmtb[0]), uintptr(len(format)))
	} else {
		n := len(params)
		var pin runtime.Pinner
		strs := make([]string, 2*n)
		for i, p := range params {
			strs[i], strs[n+i] = p.name, escapeParam(p.value)
		}
		lens := make([]uintptr, 2*n)
		ptrs := cStrings(&pin, strs, lens)
		res = c.lib.queryParamsN(handle, unsafe.Pointer(&sql[0]), uintptr(len(sql)), unsafe.Pointer(&fmtb[0]), uintptr(len(format)),
			unsafe.Pointer(&ptrs[0]), unsafe.Pointer(&lens[0]), unsafe.Pointer(&ptrs[n]), unsafe.Pointer(&lens[n]), uintptr(n))
		runtime.KeepAlive(ptrs)
		runtime.KeepAlive(lens)
		pin.Unpin()
	}
	runtime.KeepAlive(sql)
	runtime.KeepAlive(fmtb)
	if res == nil {
		return errors.New("embedded ClickHouse engine returned no result")
	}
	defer c.lib.destroyResult(res)
	if e := c.lib.resultError(res); e != nil {
		return errors.New(cString(e))
	}
	if read == nil {
		return nil
	}
	var out []byte
	if buf, n := c.lib.resultBuffer(res), c.lib.resultLength(res); buf != nil && n > 0 {
		out = unsafe.Slice((*byte)(buf), n)
	}
	return read(out)
}

// cStrings copies strs into NUL-terminated buffers pinned by pin and returns their
// addresses, with a nil after the last (argv's end); lens, when given, gets each length.
func cStrings(pin *runtime.Pinner, strs []string, lens []uintptr) []unsafe.Pointer {
	out := make([]unsafe.Pointer, len(strs)+1)
	for i, s := range strs {
		b := append([]byte(s), 0) // never empty, so &b[0] is valid
		pin.Pin(&b[0])
		out[i] = unsafe.Pointer(&b[0])
		if lens != nil {
			lens[i] = uintptr(len(s))
		}
	}
	return out
}

func cString(p unsafe.Pointer) string {
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}
