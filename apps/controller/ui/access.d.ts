/**
 * The access table the controller itself decides with. The browser loads its
 * compiled file from `/dashboard/access.js` (served from `@berth/core`, which
 * it imports nothing into), so these are its types only.
 */
export * from '@berth/core/access';
