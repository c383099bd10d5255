/** `replicant verify` as a library: `await new Verifier({ source, target }).run()` gives a VerifyReport. */
export { Verifier, type VerifyOptions, type VerifyStatus } from './verifier.js';
export { formatReport, reportToJson, type VerifyReport, type VerifySummary, type Difference, type DiffKind, type Fingerprint } from './report.js';
export { parseSample, type SampleSpec } from './sample.js';
