package server

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// pageToken resumes QueryEvents after the last event it sent. Events come ordered by time,
// then ID, so "after (TsNs, ID)" is a position that survives new rows arriving elsewhere.
type pageToken struct {
	TsNs int64
	ID   uint64
	// Sent is how many events the stream has sent, counted against the request's limit.
	Sent int64
}

const tokenVersion = 1

func (t pageToken) encode() string {
	var b [1 + 8 + 8 + 8]byte
	b[0] = tokenVersion
	binary.BigEndian.PutUint64(b[1:], uint64(t.TsNs))
	binary.BigEndian.PutUint64(b[9:], t.ID)
	binary.BigEndian.PutUint64(b[17:], uint64(t.Sent))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

var errBadToken = errors.New("page_token is not one this server gave out")

func decodeToken(s string) (pageToken, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 25 || b[0] != tokenVersion {
		return pageToken{}, errBadToken
	}
	t := pageToken{
		TsNs: int64(binary.BigEndian.Uint64(b[1:])),
		ID:   binary.BigEndian.Uint64(b[9:]),
		Sent: int64(binary.BigEndian.Uint64(b[17:])),
	}
	if t.Sent < 0 {
		return pageToken{}, errBadToken
	}
	return t, nil
}
