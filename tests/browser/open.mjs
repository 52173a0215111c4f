// A person signs in on the page and opens a conference from it (an INVITE to the focus's
// factory URI, as a softphone opens one); the page shows the new conference's ID and PIN from
// the 200's headers, and an invitation to copy (SIP URI, PIN, browser link). A second page
// opened from that link comes up with the conference and PIN filled in. Prints one JSON
// object with all of it, while the first page is still in the call.
//
// Usage: node open.mjs BASE_URL USER PASSWORD NAME
import { launch, logs, openPage, waitState, inConference, sleep } from "./pages.mjs";

const [base, user, password, name] = process.argv.slice(2);
const browser = await launch();
try {
  const ada = await openPage(browser, base, "Ada");
  await ada.page.fill("#user", user);
  await ada.page.fill("#password", password);
  await ada.page.fill("#subject", name);
  await ada.page.click("#open");
  await waitState(ada.page, inConference);
  await waitState(ada.page, () => Boolean(window.convoke.conference));
  const conference = await ada.page.evaluate(() => window.convoke.conference);
  const shown = await ada.page.textContent("#shown-id");
  const invitation = await ada.page.inputValue("#invitation-text");
  const link = invitation.match(/browsers:\s+(\S+)/)[1];
  const friend = await browser.newPage();
  await friend.goto(link);
  const filled = {
    id: await friend.inputValue("#conference-id"),
    pin: await friend.inputValue("#pin"),
  };
  console.log(JSON.stringify({ conference, shown, invitation, link, filled }));
  // Stay until the test has looked at the roster (it closes our stdin).
  await new Promise((resolve) => process.stdin.on("close", resolve).resume());
  await ada.page.click("#leave");
  await sleep(300);
} catch (e) {
  console.log(JSON.stringify({ error: String(e), logs }));
} finally {
  await browser.close();
}
