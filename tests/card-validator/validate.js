// SPDX-License-Identifier: MIT
// Checks every Teams body that render-webhook-bodies prints (one per fixture event) with Microsoft's
// own Adaptive Cards packages, and prints TAP:
//
//     node validate.js RENDER_WEBHOOK_BODIES FIXTURES_FILE
//
// A card passes when
//  - the envelope is the Workflows message of SPEC §10;
//  - it is valid against the Adaptive Card JSON schema shipped by adaptivecards-designer (the 1.0-era
//    schema: required properties, types and enum values of TextBlock, FactSet and Fact);
//  - the adaptivecards object model, parsing it for version 1.4, reports nothing (unknown elements,
//    invalid enum values, properties newer than 1.4, duplicate ids, card type and version);
//  - serializing it back for version 1.4 keeps every property we sent: the 1.4 schema allows no
//    additional properties, and the object model knows exactly the properties of 1.4.
// Before that, a broken card is checked to fail each of these, so that a validator that accepts
// everything cannot pass. Without the packages (npm ci here) the test is skipped.
'use strict';

const { execFileSync } = require('node:child_process');

let AC, adaptiveCardSchema, Ajv, draft06;
try {
    AC = require('adaptivecards/dist/adaptivecards.js');
    ({ adaptiveCardSchema } = require('adaptivecards-designer/lib/adaptive-card-schema.js'));
    Ajv = require('ajv');
    draft06 = require('ajv/dist/refs/json-schema-draft-06.json');
} catch (e) {
    console.log(`1..0 # SKIP the Adaptive Cards packages are not installed (npm ci in ${__dirname}): ${e.code || e.message}`);
    process.exit(0);
}

const CONTENT_TYPE = 'application/vnd.microsoft.card.adaptive';
const VERSION = new AC.Version(1, 4);

// The schema names its id the draft-04 way ("id"); Ajv wants "$id".
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addMetaSchema(draft06);
const schema = { ...adaptiveCardSchema, $id: adaptiveCardSchema.id };
delete schema.id;
const validateSchema = ajv.compile(schema);
// That schema lists body as a one-item tuple ("items": [ … ], "additionalItems": true), so it checks
// body[0] only: check every element against the element definitions as well.
const validateElement = ajv.compile({ $ref: `${schema.$id}#/definitions/CardElements/items/0` });

// Properties of sent that did not survive the round trip through the object model. Enum values come
// back capitalized ("bolder" → "Bolder"): strings compare without case.
function lostProperties(sent, kept, path, lost) {
    if (Array.isArray(sent)) {
        if (!Array.isArray(kept) || kept.length !== sent.length) {
            lost.push(`${path}: array of ${sent.length} became ${JSON.stringify(kept)}`);
            return lost;
        }
        sent.forEach((v, i) => lostProperties(v, kept[i], `${path}/${i}`, lost));
    } else if (sent !== null && typeof sent === 'object') {
        for (const key of Object.keys(sent)) {
            if (kept === null || typeof kept !== 'object' || !(key in kept))
                lost.push(`${path}/${key}: not a property of Adaptive Card 1.4 (or a default value)`);
            else
                lostProperties(sent[key], kept[key], `${path}/${key}`, lost);
        }
    } else if (typeof sent === 'string' && typeof kept === 'string') {
        if (sent.toLowerCase() !== kept.toLowerCase())
            lost.push(`${path}: ${JSON.stringify(sent)} came back as ${JSON.stringify(kept)}`);
    } else if (sent !== kept) {
        lost.push(`${path}: ${JSON.stringify(sent)} came back as ${JSON.stringify(kept)}`);
    }
    return lost;
}

function cardErrors(card) {
    const errors = [];
    if (!validateSchema(card))
        for (const e of validateSchema.errors)
            errors.push(`schema: ${e.instancePath || '/'} ${e.message}`);
    for (const [i, element] of (Array.isArray(card.body) ? card.body : []).entries())
        if (!validateElement(element))
            errors.push(`schema: /body/${i} is no valid element: ` +
                        validateElement.errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; '));

    const context = new AC.SerializationContext(VERSION);
    const parsed = new AC.AdaptiveCard();
    parsed.parse(card, context);
    for (let i = 0; i < context.eventCount; i++)
        errors.push(`adaptivecards: ${context.getEventAt(i).message}`);
    for (const e of parsed.validateProperties().validationEvents)
        errors.push(`adaptivecards: ${e.message}`);

    if (card.version !== '1.4')
        errors.push(`version ${JSON.stringify(card.version)} is not "1.4"`);
    const kept = parsed.toJSON(new AC.SerializationContext(VERSION));
    for (const e of lostProperties(card, kept, '', []))
        errors.push(`round trip: ${e}`);
    return errors;
}

function messageErrors(body) {
    const errors = [];
    const keys = JSON.stringify(Object.keys(body));
    if (keys !== '["type","attachments"]' || body.type !== 'message')
        errors.push(`message: keys ${keys}, type ${JSON.stringify(body.type)}`);
    if (!Array.isArray(body.attachments) || body.attachments.length !== 1)
        return errors.concat('message: not exactly one attachment');
    const a = body.attachments[0];
    if (a.contentType !== CONTENT_TYPE || a.contentUrl !== null)
        errors.push(`attachment: contentType ${JSON.stringify(a.contentType)}, contentUrl ${JSON.stringify(a.contentUrl)}`);
    if (a.content === null || typeof a.content !== 'object')
        return errors.concat('attachment: no card in content');
    return errors.concat(cardErrors(a.content));
}

const [render, fixtures] = process.argv.slice(2);
if (!render || !fixtures) {
    console.error('usage: node validate.js RENDER_WEBHOOK_BODIES FIXTURES_FILE');
    process.exit(2);
}
const lines = execFileSync(render, ['teams', fixtures], { encoding: 'utf8' }).split('\n').filter((l) => l);
const bodies = lines.map((l) => JSON.parse(l));

// Each of these must make the card fail.
const good = bodies[0].body.attachments[0].content;
const broken = [
    ['a TextBlock without text', (c) => delete c.body[0].text],
    ['an invalid weight', (c) => (c.body[0].weight = 'heavy')],
    ['a Fact without value', (c) => delete c.body[1].facts[0].value],
    ['a property newer than 1.4', (c) => (c.body[0].style = 'heading')],
    ['an element newer than 1.4', (c) => c.body.push({ type: 'Table', columns: [], rows: [] })],
    ['a property outside the schema', (c) => (c.msteams = { width: 'Full' })],
    ['no version', (c) => delete c.version],
];

let n = 0, failed = 0;
console.log(`1..${1 + broken.length + bodies.length}`);
const goodErrors = cardErrors(good);
console.log(`${goodErrors.length ? 'not ok' : 'ok'} ${++n} - the first card as rendered passes`);
failed += goodErrors.length ? 1 : 0;
for (const [what, breakIt] of broken) {
    const card = structuredClone(good);
    breakIt(card);
    const errors = cardErrors(card);
    console.log(`${errors.length ? 'ok' : 'not ok'} ${++n} - rejects ${what}`);
    failed += errors.length ? 0 : 1;
    if (errors.length)
        console.log(`# ${errors.length} errors, the last: ${errors[errors.length - 1]}`);
}
for (const { name, body } of bodies) {
    const errors = messageErrors(body);
    console.log(`${errors.length ? 'not ok' : 'ok'} ${++n} - ${name}`);
    failed += errors.length ? 1 : 0;
    for (const e of errors)
        console.log(`# ${e}`);
}
process.exit(failed ? 1 : 0);
