/**
 * `@cdktr/events/file-watcher`: trigger workflows when files change. Needs the optional peer
 * dependencies `chokidar` and `picomatch`.
 */
export {
  FileWatcherListener,
  type FileWatcherListenerOptions,
  type FileWatcherListenerStats,
  type FileEventKind,
  type FileWatcherEvent,
} from "./file-watcher-listener.js";
