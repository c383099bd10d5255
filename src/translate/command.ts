/** One command a translation produces: its arguments, as the RESP encoder takes them. */
import type { Arg } from '../resp/encode.js';

export type Command = Arg[];
