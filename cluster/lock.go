package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
)

// ErrHeld is returned when another holder has a volume's lock.
var ErrHeld = hold.ErrHeld

// Holder is who holds a volume's lock: the value of its key.
type Holder = hold.Holder

// Lock is a volume's lock held by a Session.
type Lock struct {
	Key   string
	Token int64 // the key's create revision: the fencing token
}

// Lock takes the lock at key for h, bound to the session's lease. When
// another holds it, the error names the node and container.
func (s *Session) Lock(ctx context.Context, key string, h Holder) (*Lock, error) {
	if err := s.Alive(); err != nil {
		return nil, err
	}
	value, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var resp *clientv3.TxnResponse
	err = s.c.call(ctx, "lock "+key, func(ctx context.Context) (err error) {
		resp, err = s.c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(value), clientv3.WithLease(s.lease))).
			Else(clientv3.OpGet(key)).
			Commit()
		return err
	})
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		var other Holder
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			json.Unmarshal(kvs[0].Value, &other)
		}
		return nil, heldError(other)
	}
	return &Lock{Key: key, Token: resp.Header.Revision}, nil
}

func heldError(h Holder) error {
	who := "another node"
	if h.Node != "" {
		who = fmt.Sprintf("node %s (container %s, since %s)", h.Node, h.Container, h.Since.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: %w by %s: delete that container first; a node that died releases it when its lease expires",
		errdefs.ErrFailedPrecondition, ErrHeld, who)
}

// Unlock releases l if it is still the lock that was taken: a lock lost
// with its lease and taken by another holder since is left alone.
func (s *Session) Unlock(ctx context.Context, l *Lock) error {
	return s.c.Release(ctx, l.Key, l.Token)
}

// Release deletes the lock at key if its fencing token is token.
func (c *Client) Release(ctx context.Context, key string, token int64) error {
	return c.call(ctx, "unlock "+key, func(ctx context.Context) error {
		_, err := c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", token)).
			Then(clientv3.OpDelete(key)).
			Commit()
		return err
	})
}

// Held is a lock as etcd has it.
type Held struct {
	Key    string `json:"key"`
	Holder Holder `json:"holder"`
	Token  int64  `json:"token"`
	Lease  int64  `json:"lease"`
	// TTL is what is left of the lease: how long the lock outlives its
	// holder's last renewal. -1 when the lease is gone.
	TTL time.Duration `json:"ttl"`
}

// Holders lists every volume lock in the cluster, with what is left of
// their leases.
func (c *Client) Holders(ctx context.Context) ([]Held, error) {
	prefix := strings.TrimSuffix(c.Key("", "", ""), "/") + "/"
	var resp *clientv3.GetResponse
	err := c.call(ctx, "list volume locks", func(ctx context.Context) (err error) {
		resp, err = c.etcd.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		return err
	})
	if err != nil {
		return nil, err
	}
	ttls := map[int64]time.Duration{}
	held := make([]Held, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		h := Held{Key: string(kv.Key), Token: kv.CreateRevision, Lease: kv.Lease}
		json.Unmarshal(kv.Value, &h.Holder)
		ttl, ok := ttls[kv.Lease]
		if !ok {
			ttl = -1
			err := c.call(ctx, "read lease", func(ctx context.Context) error {
				r, err := c.etcd.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
				if err == nil && r.TTL >= 0 {
					ttl = time.Duration(r.TTL) * time.Second
				}
				return err
			})
			if err != nil {
				return nil, err
			}
			ttls[kv.Lease] = ttl
		}
		h.TTL = ttl
		held = append(held, h)
	}
	return held, nil
}
