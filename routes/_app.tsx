import type { AppProps } from "../fresh.ts";

/** The page shell of every HTML route. */
export default function App({ Component }: AppProps) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>Edge SCADA HMI</title>
        <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href="/styles.css" />
      </head>
      <body>
        <nav class="nav" aria-label="Views">
          <a href="/">Device</a>
          <a href="/fleet">Fleet</a>
        </nav>
        <Component />
      </body>
    </html>
  );
}
