package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/caddy-dcr/caddy-dcr/internal/strlist"
)

// Clients are stored in a small binary format rather than JSON: encoding
// and decoding a record is on every request's path, and reflection-based
// JSON was a tenth of a read's cost. The format is a version byte, then
// fields as (number, length, payload), so a later version can add fields
// that an older one skips.

const codecVersion = 1

// Field numbers. Never reuse one.
const (
	fID = iota + 1
	fAPI
	fOwner
	fCreatedMs
	fUpdatedMs
	fSecretHash
	fSecretExpiresAt
	fRATHash
	fRedirectURIs
	fAuthMethod
	fGrantTypes
	fResponseTypes
	fApplicationType
	fClientName
	fClientURI
	fLogoURI
	fTOSURI
	fPolicyURI
	fJWKSURI
	fJWKS
	fScope
	fContacts
	fSoftwareID
	fSoftwareVersion
	fSoftwareStatement
	fLocalized
	fDescription
	fRefreshTokenExpiry
	fSource
	fPermitted
	fSuper
	fPriorRATHash
	fPriorRATFrom
	fPriorRATUntil
	fSecretUndelivered
	fAuthSigningAlg
	fEndsAt
)

type encoder struct{ b []byte }

func (e *encoder) field(n int, payload []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(n))
	e.b = binary.AppendUvarint(e.b, uint64(len(payload)))
	e.b = append(e.b, payload...)
}

func (e *encoder) str(n int, s string) {
	if s == "" {
		return
	}
	e.b = binary.AppendUvarint(e.b, uint64(n))
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) int(n int, v int64) {
	if v == 0 {
		return
	}
	var buf [binary.MaxVarintLen64]byte
	e.field(n, binary.AppendVarint(buf[:0], v))
}

// flag decodes a field written by encoder.bool.
func flag(p string) bool { return len(p) == 1 && p[0] == 1 }

func (e *encoder) bool(n int, v bool) {
	if v {
		e.field(n, []byte{1})
	}
}

func (e *encoder) strs(n int, list []string) {
	if len(list) == 0 {
		return
	}
	e.b = binary.AppendUvarint(e.b, uint64(n))
	e.b = binary.AppendUvarint(e.b, uint64(strlist.Size(list)))
	e.b = strlist.Append(e.b, list)
}

// encodeClient returns the stored form of c.
func encodeClient(c *Client) []byte {
	// Encoded into a reused buffer, then copied at its exact size.
	scratch := scratchPool.Get().(*[]byte)
	e := encoder{b: (*scratch)[:0]}
	e.b = append(e.b, codecVersion)
	e.str(fID, c.ID)
	e.str(fAPI, c.API)
	e.str(fOwner, c.Owner)
	e.int(fCreatedMs, c.CreatedMs)
	e.int(fUpdatedMs, c.UpdatedMs)
	e.str(fSecretHash, c.SecretHash)
	e.int(fSecretExpiresAt, c.SecretExpiresAt)
	e.int(fEndsAt, c.EndsAt)
	e.str(fRATHash, c.RATHash)
	e.strs(fRedirectURIs, c.RedirectURIs)
	e.str(fAuthMethod, c.TokenEndpointAuthMethod)
	e.str(fAuthSigningAlg, c.TokenEndpointAuthSigningAlg)
	e.strs(fGrantTypes, c.GrantTypes)
	e.strs(fResponseTypes, c.ResponseTypes)
	e.str(fApplicationType, c.ApplicationType)
	e.str(fClientName, c.ClientName)
	e.str(fClientURI, c.ClientURI)
	e.str(fLogoURI, c.LogoURI)
	e.str(fTOSURI, c.TOSURI)
	e.str(fPolicyURI, c.PolicyURI)
	e.str(fJWKSURI, c.JWKSURI)
	e.str(fJWKS, string(c.JWKS))
	e.str(fScope, c.Scope)
	e.strs(fContacts, c.Contacts)
	e.str(fSoftwareID, c.SoftwareID)
	e.str(fSoftwareVersion, c.SoftwareVersion)
	e.str(fSoftwareStatement, c.SoftwareStatement)
	if len(c.Localized) > 0 {
		keys := make([]string, 0, len(c.Localized))
		for k := range c.Localized {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		pairs := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			pairs = append(pairs, k, c.Localized[k])
		}
		e.strs(fLocalized, pairs)
	}
	e.str(fDescription, c.Description)
	e.int(fRefreshTokenExpiry, c.RefreshTokenExpiry)
	e.str(fSource, string(c.Source))
	e.bool(fPermitted, c.Permitted)
	e.bool(fSuper, c.Super)
	e.str(fPriorRATHash, c.PriorRATHash)
	e.int(fPriorRATFrom, c.PriorRATFrom)
	e.int(fPriorRATUntil, c.PriorRATUntil)
	e.bool(fSecretUndelivered, c.SecretUndelivered)
	out := append([]byte(nil), e.b...)
	if cap(e.b) <= 64<<10 {
		*scratch = e.b
		scratchPool.Put(scratch)
	}
	return out
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

var errCorrupt = errors.New("corrupt client record")

// decodeStrs reads a list field's payload.
func decodeStrs(p string) ([]string, error) {
	list, ok := strlist.Parse(p)
	if !ok {
		return nil, errCorrupt
	}
	return list, nil
}

// decodeClient reads a stored client. Its strings share b's bytes rather
// than a copy of them: a Store's records are never written once read (see
// storage.Record), so b cannot change under them, and a read then costs
// no copy of the record.
func decodeClient(b []byte) (*Client, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	var s string
	if len(b) > 1 {
		s = unsafe.String(&b[1], len(b)-1)
	}
	c := &Client{}
	for len(s) > 0 {
		num, k := strlist.Uvarint(s)
		if k <= 0 {
			return nil, errCorrupt
		}
		s = s[k:]
		n, k := strlist.Uvarint(s)
		if k <= 0 || uint64(len(s)-k) < n {
			return nil, errCorrupt
		}
		p := s[k : k+int(n)]
		s = s[k+int(n):]
		var err error
		switch num {
		case fID:
			c.ID = p
		case fAPI:
			c.API = p
		case fOwner:
			c.Owner = p
		case fCreatedMs:
			c.CreatedMs, err = varint(p)
		case fUpdatedMs:
			c.UpdatedMs, err = varint(p)
		case fSecretHash:
			c.SecretHash = p
		case fSecretExpiresAt:
			c.SecretExpiresAt, err = varint(p)
		case fEndsAt:
			c.EndsAt, err = varint(p)
		case fRATHash:
			c.RATHash = p
		case fRedirectURIs:
			c.RedirectURIs, err = decodeStrs(p)
		case fAuthMethod:
			c.TokenEndpointAuthMethod = p
		case fAuthSigningAlg:
			c.TokenEndpointAuthSigningAlg = p
		case fGrantTypes:
			c.GrantTypes, err = decodeStrs(p)
		case fResponseTypes:
			c.ResponseTypes, err = decodeStrs(p)
		case fApplicationType:
			c.ApplicationType = p
		case fClientName:
			c.ClientName = p
		case fClientURI:
			c.ClientURI = p
		case fLogoURI:
			c.LogoURI = p
		case fTOSURI:
			c.TOSURI = p
		case fPolicyURI:
			c.PolicyURI = p
		case fJWKSURI:
			c.JWKSURI = p
		case fJWKS:
			c.JWKS = []byte(p)
		case fScope:
			c.Scope = p
		case fContacts:
			c.Contacts, err = decodeStrs(p)
		case fSoftwareID:
			c.SoftwareID = p
		case fSoftwareVersion:
			c.SoftwareVersion = p
		case fSoftwareStatement:
			c.SoftwareStatement = p
		case fLocalized:
			var pairs []string
			pairs, err = decodeStrs(p)
			if err == nil && len(pairs)%2 == 0 {
				c.Localized = make(map[string]string, len(pairs)/2)
				for i := 0; i < len(pairs); i += 2 {
					c.Localized[pairs[i]] = pairs[i+1]
				}
			}
		case fDescription:
			c.Description = p
		case fRefreshTokenExpiry:
			c.RefreshTokenExpiry, err = varint(p)
		case fSource:
			c.Source = []byte(p)
		case fPermitted:
			c.Permitted = flag(p)
		case fSuper:
			c.Super = flag(p)
		case fPriorRATHash:
			c.PriorRATHash = p
		case fPriorRATFrom:
			c.PriorRATFrom, err = varint(p)
		case fPriorRATUntil:
			c.PriorRATUntil, err = varint(p)
		case fSecretUndelivered:
			c.SecretUndelivered = flag(p)
		default:
			// A field of a later version: skipped.
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// varint is binary.Varint of a whole field.
func varint(p string) (int64, error) {
	ux, k := strlist.Uvarint(p)
	if k <= 0 || k != len(p) {
		return 0, errCorrupt
	}
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, nil
}
