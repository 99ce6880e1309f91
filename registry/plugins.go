package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Kustvakt lets a user install a permitted plugin client into a super
// client (its web front end). Installations are records of their own.

// ErrInstalled means the plugin is already installed for that user and super client.
var ErrInstalled = errors.New("plugin already installed")

// Installation is one plugin installed by a user into a super client.
type Installation struct {
	User          string `json:"user"`
	SuperClientID string `json:"super_client_id"`
	ClientID      string `json:"client_id"`
	InstalledMs   int64  `json:"installed_ms"`
	// StoredSuper tells Install that the super client is a stored client
	// (not one the config declares), which a delete can remove.
	StoredSuper bool `json:"-"`
}

// ErrSuperGone means the stored super client was deleted while a plugin
// was installed into it.
var ErrSuperGone = errors.New("super client deleted")

// The parts are joined with NUL, which no user name or client id contains.
func installationID(user, superID, clientID string) string {
	return "i/" + user + "\x00" + superID + "\x00" + clientID
}

func installationTag(user, superID string) string {
	return "installed:" + user + "\x00" + superID
}

// pluginInstallsTag is the tag of every installation of one plugin, so
// that deleting the plugin can remove them.
func pluginInstallsTag(clientID string) string {
	return "installs:" + clientID
}

// superInstallsTag is the tag of every installation into one super
// client, so that deleting the super client can remove them: nobody could
// list or uninstall them without its credentials.
func superInstallsTag(superID string) string {
	return "superinstalls:" + superID
}

// Install records an installation; ErrInstalled if it exists, ErrNotFound
// if the plugin is deleted meanwhile.
func (r *Registry) Install(ctx context.Context, inst *Installation) error {
	inst.InstalledMs = r.Now().UnixMilli()
	b, err := json.Marshal(inst)
	if err != nil {
		return fmt.Errorf("encoding installation: %w", err)
	}
	tags := []string{installationTag(inst.User, inst.SuperClientID), pluginInstallsTag(inst.ClientID)}
	if inst.StoredSuper {
		// Only a stored super client is ever deleted.
		tags = append(tags, superInstallsTag(inst.SuperClientID))
	}
	id := installationID(inst.User, inst.SuperClientID, inst.ClientID)
	err = r.Store.Create(ctx, &storage.Record{ID: id, Data: b, Tags: tags})
	if errors.Is(err, storage.ErrExists) {
		return ErrInstalled
	}
	if err != nil {
		return err
	}
	// A plugin deleted between the caller's read and the write above took
	// its installations with it (Delete), but not this one: look again.
	if _, err := r.Peek(ctx, inst.ClientID); errors.Is(err, ErrNotFound) {
		r.removeInstallations(ctx, inst.ClientID)
		return ErrNotFound
	}
	// So for a stored super client deleted meanwhile (its credentials
	// were checked before): nobody could list or uninstall this one.
	if inst.StoredSuper {
		if _, err := r.Peek(ctx, inst.SuperClientID); errors.Is(err, ErrNotFound) {
			if rec, err := r.Store.Get(ctx, id); err == nil {
				_ = r.Store.Delete(ctx, rec)
			}
			return ErrSuperGone
		}
	}
	r.pruneInstalled(ctx, inst.User, inst.SuperClientID)
	return nil
}

// removeInstallations deletes every installation of a deleted client, and
// every installation into it (as a super client). It is best effort: what
// a store failure leaves behind is never listed (Installed callers skip
// plugins that are gone, and remove them).
func (r *Registry) removeInstallations(ctx context.Context, clientID string) {
	for _, tag := range []string{pluginInstallsTag(clientID), superInstallsTag(clientID)} {
		recs, err := r.Store.List(ctx, tag)
		if err != nil {
			continue
		}
		for _, rec := range recs {
			_ = r.Store.Delete(ctx, rec)
		}
	}
}

// pruneInstalled deletes, best effort, the installations user made into
// the super client of plugins that are gone. Installations have no expiry
// of their own (an idle_lifetime moves their plugin's end), so those of
// a plugin that expired stay until something looks: the user's listing,
// and each new installation, so that installing plugins that then expire,
// over and over, cannot pile them up.
func (r *Registry) pruneInstalled(ctx context.Context, user, superID string) {
	recs, err := r.Store.List(ctx, installationTag(user, superID))
	if err != nil {
		return
	}
	for _, rec := range recs {
		var inst Installation
		if json.Unmarshal(rec.Data, &inst) != nil {
			continue
		}
		if _, err := r.Peek(ctx, inst.ClientID); errors.Is(err, ErrNotFound) {
			_ = r.Store.Delete(ctx, rec)
		}
	}
}

// Installed lists what user installed into the super client.
func (r *Registry) Installed(ctx context.Context, user, superID string) ([]*Installation, error) {
	recs, err := r.Store.List(ctx, installationTag(user, superID))
	if err != nil {
		return nil, err
	}
	out := make([]*Installation, 0, len(recs))
	for _, rec := range recs {
		var inst Installation
		if err := json.Unmarshal(rec.Data, &inst); err != nil {
			// Skipped (and warned about) like any damaged record in a
			// listing: one must not take the user's others down with it.
			storage.SkipCorrupt(storage.CorruptRecord("installation record "+strconv.Quote(rec.ID), err))
			continue
		}
		out = append(out, &inst)
	}
	return out, nil
}

// Uninstall removes an installation; ErrNotFound if there is none. The
// installation of a plugin that is gone (one that expired, or was deleted
// before deletes took installations with them) is not installed either,
// as Installed never lists it: it is removed, and ErrNotFound returned.
func (r *Registry) Uninstall(ctx context.Context, user, superID, clientID string) error {
	var retry conflictRetry
	for {
		rec, err := r.Store.Get(ctx, installationID(user, superID, clientID))
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		err = r.Store.Delete(ctx, rec)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return ErrNotFound
		case errors.Is(err, storage.ErrConflict) && retry.again():
			continue
		case err != nil:
			return err
		}
		if _, err := r.Peek(ctx, clientID); errors.Is(err, ErrNotFound) {
			return ErrNotFound
		}
		return nil
	}
}
