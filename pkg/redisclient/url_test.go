package redisclient

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		wantErr string
		check   func(t *testing.T, p *parsed)
	}{
		{
			name: "single node with db and password",
			url:  "redis://:pw@10.0.0.1:6380/3?dial_timeout=2s",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, ModeSingle, p.mode)
				require.Equal(t, "10.0.0.1:6380", p.single.Addr)
				require.Equal(t, 3, p.single.DB)
				require.Equal(t, "pw", p.single.Password)
				require.Equal(t, 2*time.Second, p.single.DialTimeout)
				require.Nil(t, p.single.TLSConfig)
			},
		},
		{
			name: "single node tls default port",
			url:  "rediss://cache.internal",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, "cache.internal:6379", p.single.Addr)
				require.NotNil(t, p.single.TLSConfig)
			},
		},
		{
			name: "unix socket",
			url:  "unix:///run/redis.sock?db=2",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, "unix", p.single.Network)
				require.Equal(t, "/run/redis.sock", p.single.Addr)
				require.Equal(t, 2, p.single.DB)
			},
		},
		{
			name: "sentinel",
			url:  "redis+sentinel://:masterpw@s1:26379,s2:26380,s3/2?master=mymaster",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, ModeSentinel, p.mode)
				require.Equal(t, "mymaster", p.failover.MasterName)
				require.Equal(t, []string{"s1:26379", "s2:26380", "s3:26379"}, p.failover.SentinelAddrs)
				require.Equal(t, 2, p.failover.DB)
				require.Equal(t, "masterpw", p.failover.Password, "userinfo authenticates to the data nodes")
				require.Empty(t, p.failover.SentinelPassword)
			},
		},
		{
			name: "sentinel with own credentials, user, ipv6 and options",
			url:  "rediss+sentinel://app:pw@[::1]:26379,[fd00::2]/0?master=m&sentinel_password=spw&sentinel_username=sadmin&pool_size=7",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, []string{"[::1]:26379", "[fd00::2]:26379"}, p.failover.SentinelAddrs)
				require.Equal(t, "app", p.failover.Username)
				require.Equal(t, "pw", p.failover.Password)
				require.Equal(t, "sadmin", p.failover.SentinelUsername)
				require.Equal(t, "spw", p.failover.SentinelPassword)
				require.Equal(t, 7, p.failover.PoolSize)
				require.NotNil(t, p.failover.TLSConfig)
			},
		},
		{
			name: "sentinel go-redis master_name spelling",
			url:  "redis+sentinel://s1/0?master_name=m2",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, "m2", p.failover.MasterName)
			},
		},
		{
			name: "percent-encoded password",
			url:  "redis+sentinel://:p%40ss%2Fw@s1/0?master=m",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, "p@ss/w", p.failover.Password)
			},
		},
		{
			name: "cluster",
			url:  "redis+cluster://:pw@n1:7000,n2:7001,n3",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, ModeCluster, p.mode)
				require.Equal(t, []string{"n1:7000", "n2:7001", "n3:6379"}, p.cluster.Addrs)
				require.Equal(t, "pw", p.cluster.Password)
			},
		},
		{
			name: "cluster db 0 path tolerated",
			url:  "redis+cluster://n1:7000/0",
			check: func(t *testing.T, p *parsed) {
				require.Equal(t, []string{"n1:7000"}, p.cluster.Addrs)
			},
		},
		{name: "no scheme", url: "localhost:6379", wantErr: "missing scheme"},
		{name: "unknown scheme", url: "memcached://h", wantErr: "unsupported scheme"},
		{name: "sentinel without master", url: "redis+sentinel://s1,s2/0", wantErr: "master"},
		{name: "sentinel without hosts", url: "redis+sentinel:///0?master=m", wantErr: "no hosts"},
		{name: "sentinel bad db", url: "redis+sentinel://s1/x?master=m", wantErr: "database"},
		{name: "sentinel bad port", url: "redis+sentinel://s1:http/0?master=m", wantErr: "bad host"},
		{name: "cluster with db", url: "redis+cluster://n1:7000/2", wantErr: "cannot select database"},
		{name: "unknown option", url: "redis+cluster://n1?colour=red", wantErr: "unexpected option"},
		{name: "bad port single", url: "redis://:secretpw@h:port/0", wantErr: "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseURL(tt.url)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalidURL)
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "secretpw", "parse errors must not echo the password")
				return
			}
			require.NoError(t, err)
			tt.check(t, p)
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://:pw@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"redis+sentinel://u:pw@[::1]:26379,h2/0?master=m&sentinel_password=spw", "redis+sentinel://u:xxxxx@[::1]:26379,h2/0?master=m&sentinel_password=xxxxx"},
		{"redis+cluster://n1:7000", "redis+cluster://n1:7000"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			require.Equal(t, tt.want, Redact(tt.in))
		})
	}
}
