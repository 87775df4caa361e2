import t from 'tap';
import { GRPCCancelledError, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError } from 'etcd3';
import { circuitBreaker, ConsecutiveBreaker, handleAll } from 'cockatiel';
import {
  CALL_TIMEOUT_MS,
  countsAsHostFailure,
  DEFAULT_LEADER_LEASE_TTL_SECONDS,
  ETCD_DOWN_AFTER_MS,
  latencyTolerant,
  renewMarginMs,
  TOLERATED_ROUND_TRIP_MS,
  toleratedKeepaliveRoundTripMs,
} from '@berth/store';

/** etcd's own defaults the budget is written against (ARCHITECTURE.md, "Timing against etcd"). */
const ETCD_RAFT_ELECTION_MS = 2000;
const ETCD_REQUEST_TIMEOUT_MS = 7000;

t.test('every deadline tolerates a slow etcd and still notices a dead one', async (t) => {
  t.ok(toleratedKeepaliveRoundTripMs(DEFAULT_LEADER_LEASE_TTL_SECONDS) >= TOLERATED_ROUND_TRIP_MS, 'the leader keeps office through the tolerated round trip');
  t.ok(ETCD_DOWN_AFTER_MS > TOLERATED_ROUND_TRIP_MS, 'a probe waits longer than the tolerated round trip');
  t.ok(ETCD_DOWN_AFTER_MS > ETCD_RAFT_ELECTION_MS, "a probe outlasts etcd's own leader election");
  t.ok(CALL_TIMEOUT_MS >= TOLERATED_ROUND_TRIP_MS + ETCD_RAFT_ELECTION_MS, 'a call outlasts a slow round trip during an etcd election');
  t.ok(CALL_TIMEOUT_MS < ETCD_REQUEST_TIMEOUT_MS, "a call gives up before etcd's own request timeout");
  t.ok(DEFAULT_LEADER_LEASE_TTL_SECONDS * 1000 + 1000 < 15_000 / 2, "failover stays well under Kubernetes' 15 s lease");
});

t.test('the renew margin and what it tolerates', async (t) => {
  t.equal(renewMarginMs(2), 250, 'etcd minimum TTL: 250 ms');
  t.equal(renewMarginMs(4), 500, 'default TTL: 500 ms');
  t.equal(renewMarginMs(15), 1875, 'TTL / 8 above that');
  t.equal(Math.round(toleratedKeepaliveRoundTripMs(2)), 1250, 'TTL 2 s: a leader survives 1.25 s round trips (was 0.83 s with a TTL / 4 margin and keepalives every TTL / 3 only)');
  t.equal(Math.round(toleratedKeepaliveRoundTripMs(4)), 3000, 'TTL 4 s: 3 s (2.17 s with keepalives every TTL / 3 only)');
});

t.test('a deadline or a cancellation is about one call, not the connection', async (t) => {
  const deadline = () => new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded');
  t.notOk(countsAsHostFailure(deadline(), 1), 'one host: a missed deadline opens no breaker and is not retried');
  t.ok(countsAsHostFailure(deadline(), 3), 'several members: it counts against that member, and another one is tried');
  t.notOk(countsAsHostFailure(new GRPCCancelledError('1 CANCELLED: Cancelled on client'), 1), 'a cancelled call neither');
  t.ok(countsAsHostFailure(new GRPCUnavailableError('14 UNAVAILABLE: No connection established'), 1), 'a refused connection is a host failure');

  const policy = latencyTolerant(circuitBreaker(handleAll, { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(3) }));
  const slow = await policy.execute(() => Promise.reject(deadline())).catch((err: unknown) => err);
  t.ok(slow instanceof GRPCDeadlineExceededError, 'the error keeps its class (the API still says etcd did not answer in time)');
  t.notOk(isRecoverableError(slow as Error), 'but etcd3 no longer treats it as a reason to reset the connection');
  const refused = await policy.execute(() => Promise.reject(new GRPCUnavailableError('14 UNAVAILABLE'))).catch((err: unknown) => err);
  t.ok(isRecoverableError(refused as Error), 'a refused connection still resets it');
  t.equal(await policy.execute(() => 42), 42, 'answers pass through');
});
