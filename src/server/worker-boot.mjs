// Starts the engine worker thread: TypeScript sources load through tsx there as in the main thread.
import { register } from 'tsx/esm/api';

register();
await import(new URL('./engine-worker.ts', import.meta.url).href);
