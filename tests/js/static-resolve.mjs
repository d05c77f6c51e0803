// Node module hooks for the dashboard's browser modules: "/static/…" resolves to dashboard/static/… as the app serves it.
const STATIC = new URL("../../dashboard/static/", import.meta.url);

export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith("/static/")) {
    return { url: new URL(specifier.slice("/static/".length), STATIC).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
