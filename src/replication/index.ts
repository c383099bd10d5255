/** The replica side of the replication protocol. */
export { ReplicationLink, type LinkOptions, type LinkPhase, type PsyncOutcome, type LinkEvents, type LinkError } from './link.js';
export { RdbTrailer, EOF_MARK_LENGTH, type RdbFraming } from './rdb-trailer.js';
export { ReplicationSourceError, isRetryable } from './errors.js';
export { parseRedisUrl, endpointLabel, DEFAULT_REDIS_PORT, type SourceEndpoint } from './url.js';
