import type { PageProps } from "../fresh.ts";

export default function NotFound({ url }: PageProps) {
  return (
    <main class="page">
      <h1>Not found</h1>
      <p>
        Nothing at <code>{url.pathname}</code>. <a href="/">Back to the HMI</a>
      </p>
    </main>
  );
}
