// Every text a patient or a kiné reads, French first, English second.
//
// Elements are bound to a key (`bind`, `bindAttr`) or to a server-given pair (`bindPair`), so that the
// language switch retranslates the page in place without rebuilding it (a live call keeps its video).
// Texts are plain words: many patients are elderly and 44 % of French adults struggle with health
// information; keep sentences short, one idea each.

/** The consent text shown on the join page, by version. The server names the version in force. */
export const CONSENT_TEXT_VERSION = '2026-11-v1';

const fr = {
  'app.title': 'Télésoin kiné',
  'lang.switch': 'English',
  'lang.switch.label': 'Switch to English',
  'common.loading': 'Chargement…',
  'common.retry': 'Réessayer',
  'common.reload': 'Recharger la page',
  'common.close': 'Fermer',
  'common.cancel': 'Annuler',
  'common.save': 'Enregistrer',
  'common.yes': 'Oui',
  'common.no': 'Non',
  'common.error.network': 'Le service ne répond pas. Vérifiez votre connexion Internet, puis réessayez.',
  'common.error.generic': 'Une erreur est survenue. Réessayez.',

  // Patient join page
  'join.title': 'Votre séance de kinésithérapie',
  'join.notoken.title': 'Lien incomplet',
  'join.notoken.text': 'Ouvrez le lien complet reçu de votre cabinet, sans le modifier.',
  'join.unsupported.title': 'Ce navigateur ne permet pas la vidéo',
  'join.unsupported.text': 'Ouvrez le lien avec un navigateur récent : Chrome, Edge, Firefox ou Safari.',
  'join.browsers': 'Fonctionne avec Chrome, Edge, Firefox et Safari récents, sur ordinateur, tablette ou téléphone. Rien à installer.',
  'join.intro.hello': 'Bonjour',
  'join.intro.with': 'Séance à distance avec {kine}',
  'join.intro.when': '{date} à {time}',
  'join.intro.act': 'Soin : {act}',
  'join.billing.reimbursable': 'Remboursée par l’Assurance Maladie, comme une séance au cabinet.',
  'join.billing.hn': 'Non remboursée par l’Assurance Maladie (hors nomenclature). Votre kinésithérapeute vous remettra une facture.',
  'join.price.amount': 'Prix de la séance : {amount}',
  'join.price.accept': 'J’ai pris connaissance de ce prix et je l’accepte',
  'join.price.required': 'Cochez la case pour accepter le prix avant la séance.',
  'join.intro.next': 'Vérifier ma caméra et mon micro',
  'join.devices.title': 'Vérifions votre caméra et votre micro',
  'join.devices.preview': 'Votre image',
  'join.devices.mic': 'Niveau de votre micro : parlez, la barre doit bouger.',
  'join.devices.mic.label': 'Niveau du micro',
  'join.devices.speaker': 'Tester le son',
  'join.devices.speaker.playing': 'Vous devez entendre un son. Sinon, montez le volume.',
  'join.devices.asking': 'Votre navigateur va vous demander l’accès à la caméra et au micro. Répondez « Autoriser ».',
  'join.devices.denied.title': 'La caméra et le micro sont bloqués',
  'join.devices.denied.text': 'Touchez le cadenas à gauche de l’adresse de la page, choisissez « Autoriser » pour la caméra et le micro, puis touchez « Réessayer ».',
  'join.devices.nocamera.title': 'Aucune caméra trouvée',
  'join.devices.nocamera.text': 'Branchez une caméra ou utilisez un téléphone ou une tablette. Vous pouvez aussi continuer avec le son seulement.',
  'join.devices.audioonly': 'Continuer avec le son seulement',
  'join.devices.busy.title': 'La caméra est déjà utilisée',
  'join.devices.busy.text': 'Fermez les autres applications qui utilisent la caméra (WhatsApp, Zoom…), puis touchez « Réessayer ».',
  'join.devices.join': 'Tout fonctionne : rejoindre la séance',
  'join.connecting': 'Connexion à la séance…',
  'join.consent.title': 'Votre accord pour le télésoin',
  'join.consent.check': 'J’ai lu ce texte et je suis d’accord.',
  'join.consent.submit': 'Je suis d’accord : rejoindre la séance',
  'join.consent.required': 'Cochez la case pour donner votre accord.',
  'join.consent.version': 'Version du texte : {version}',
  'join.consent.minor.title': 'L’accord du parent pour le télésoin',
  'join.consent.minor': 'Pour une personne de moins de 18 ans, c’est le parent ou le représentant légal qui donne son accord. Indiquez votre nom et votre lien avec le patient.',
  'join.consent.rep.name': 'Votre nom et prénom (parent ou représentant légal)',
  'join.consent.rep.relation': 'Votre lien avec le patient (mère, père, tuteur…)',
  'join.consent.rep.check': 'Je suis son parent ou son représentant légal, j’ai lu ce texte et je suis d’accord.',
  'join.consent.rep.required': 'Indiquez votre nom et votre lien avec le patient.',
  'join.consent.rep.tick': 'Cochez la case pour donner votre accord de parent ou de représentant légal.',
  'join.attest.parent.title': 'Un parent doit être présent',
  'join.attest.parent.text': 'Pour une personne de moins de 18 ans, un parent ou un adulte autorisé reste à côté pendant toute la séance.',
  'join.attest.parent.check': 'Je confirme qu’un parent ou un adulte autorisé est présent.',
  'join.attest.aidant.title': 'Votre aidant doit être présent',
  'join.attest.aidant.text': 'Pour votre sécurité, la personne qui vous aide au quotidien reste à côté de vous pendant toute la séance.',
  'join.attest.aidant.check': 'Je confirme que mon aidant est présent.',
  'join.attest.submit': 'Confirmer',
  'join.attest.required': 'Cochez la case pour confirmer.',
  'join.attest.name': 'Nom et prénom de la personne présente',
  'join.attest.relation': 'Son lien avec le patient (mère, fils, aidant…)',
  'join.attest.named': 'Indiquez le nom de la personne présente et son lien avec le patient.',
  'join.waiting.title': 'Salle d’attente',
  'join.waiting.awaiting_admission': 'Votre kinésithérapeute va vous faire entrer.',
  'join.waiting.kine_absent': 'Votre kinésithérapeute n’est pas encore là. Restez sur cette page : vous entrerez dès son arrivée.',
  'join.waiting.calm': 'Vous n’avez rien à faire. Gardez cette page ouverte.',
  'join.refused.title': 'La séance ne peut pas commencer',
  'join.refused.code': 'Code : {code}',
  'join.refused.retry_in': 'Vous pourrez réessayer dans {seconds} s.',
  'join.refused.retry_now': 'Vous pouvez réessayer maintenant.',
  'join.replaced.title': 'Séance ouverte sur un autre appareil',
  'join.replaced.text': 'Cette séance continue sur un autre appareil. Pour la reprendre ici, touchez le bouton.',
  'join.replaced.resume': 'Reprendre la séance ici',
  'join.lost.title': 'Connexion perdue',
  'join.lost.text': 'La connexion n’a pas pu être rétablie. Vérifiez votre connexion Internet, puis touchez le bouton.',
  'join.lost.next': 'Si cela ne marche toujours pas, appelez votre cabinet : la séance peut reprendre plus tard avec le même lien.',
  'join.left.title': 'Vous avez quitté la séance',
  'join.left.text': 'Votre kinésithérapeute est peut-être encore là. Vous pouvez revenir tout de suite, sans refaire les vérifications.',
  'join.left.back': 'Revenir dans la séance',
  'join.left.close': 'Si la séance est finie, vous pouvez fermer cette page.',
  'join.devices.nodevice.title': 'Aucun micro ni caméra trouvé',
  'join.devices.nodevice.text': 'Cet appareil n’a pas de micro ni de caméra, ou ils sont débranchés. Branchez-les, ou ouvrez le lien sur un téléphone ou une tablette, puis touchez « Réessayer ».',
  'join.devices.other.title': 'La caméra et le micro ne répondent pas',
  'join.devices.other.text': 'Fermez les autres onglets et applications, puis touchez « Réessayer ». Si cela continue, redémarrez l’appareil.',
  'join.ended.title': 'La séance est terminée',
  'join.ended.duration': 'Durée de la séance : {duration}',
  'join.ended.thanks': 'Merci. Vous pouvez fermer cette page.',
  'join.ended.left': 'Vous avez quitté la séance.',

  // Call view
  'call.region': 'Appel vidéo',
  'call.remote': 'Vidéo de l’autre personne',
  'call.remote.kine': 'Votre kinésithérapeute',
  'call.remote.patient': 'Votre patient',
  'call.self': 'Votre image',
  'call.controls': 'Commandes de l’appel',
  'call.mic.on': 'Couper le micro',
  'call.mic.off': 'Rallumer le micro',
  'call.mic.muted': 'Micro coupé',
  'call.cam.on': 'Couper la caméra',
  'call.cam.off': 'Rallumer la caméra',
  'call.hangup': 'Raccrocher',
  'call.end': 'Terminer la séance',
  'call.hangup.confirm': 'Voulez-vous vraiment quitter la séance ?',
  'call.quality': 'Réseau',
  'call.quality.good': 'Réseau : bon',
  'call.quality.medium': 'Réseau : moyen',
  'call.quality.poor': 'Réseau : faible',
  'call.quality.unknown': 'Réseau : mesure…',
  'call.connecting': 'Connexion de la vidéo…',
  'call.reconnecting': 'Connexion perdue. Reconnexion en cours, ne fermez pas la page…',
  'call.peer.reconnecting': 'L’autre personne se reconnecte…',
  'call.peer.left': 'L’autre personne a quitté l’appel.',
  'call.patient.left': 'Votre patient ou patiente a quitté l’appel. Son lien reste valable pendant la séance : attendez son retour, ou terminez la séance.',
  'call.patient.reconnecting': 'La connexion de votre patient ou patiente est coupée. Reconnexion en cours, attendez quelques secondes…',
  'call.kine.left': 'Votre kinésithérapeute a quitté la salle. Restez sur cette page : la séance reprend dès son retour.',
  'call.kine.reconnecting': 'La connexion de votre kinésithérapeute est coupée. Attendez quelques secondes, la séance reprend seule.',
  'call.waiting.patient.early': 'Vous êtes en avance. Votre patient ou patiente pourra entrer à partir de {time}. Vous pouvez quitter la salle et revenir.',
  'call.leave': 'Quitter la salle',
  'call.end.confirm.title': 'Terminer la séance ?',
  'call.end.confirm.text': 'La séance se termine pour tout le monde et la durée facturable est arrêtée. Pour sortir un moment sans terminer, choisissez plutôt « Quitter la salle ».',
  'call.end.confirm.yes': 'Oui, terminer la séance',
  'call.end.confirm.no': 'Continuer la séance',
  'call.hangup.confirm.title': 'Raccrocher ?',
  'call.hangup.confirm.text': 'Vous quittez la séance. Vous pourrez revenir avec le même lien tant qu’elle n’est pas terminée.',
  'call.hangup.confirm.yes': 'Oui, raccrocher',
  'call.hangup.confirm.no': 'Rester dans la séance',
  'call.cam.switch': 'Changer de caméra',
  'call.remote.mic_off': 'Micro coupé',
  'call.remote.cam_off': 'Caméra coupée',
  'call.screen.remote': 'Écran partagé par votre kinésithérapeute',
  'call.share.start': 'Partager l’écran',
  'call.share.stop': 'Arrêter le partage',
  'call.share.active': 'Vous partagez votre écran. La personne en face le voit en grand.',
  'call.timer': 'Durée de l’appel',
  'call.fullscreen': 'Plein écran',
  'call.fullscreen.exit': 'Quitter le plein écran',
  'call.peer.net.poor': 'Le réseau de l’autre personne est faible',
  'call.peer.net.lost': 'La connexion de l’autre personne est coupée',
  'call.chat.open': 'Messages',
  'call.chat.close': 'Fermer les messages',
  'call.chat.title': 'Messages',
  'call.chat.private': 'Les messages vont directement à l’autre personne. Ils ne sont pas enregistrés.',
  'call.chat.label': 'Votre message',
  'call.chat.send': 'Envoyer',
  'call.chat.me': 'Vous',
  'call.chat.kine': 'Kinésithérapeute',
  'call.chat.patient': 'Patient ou patiente',
  'call.chat.new': 'Nouveau message :',
  'call.chat.unread': 'Messages, {n} non lus',
  'call.chat.unavailable': 'Le message n’est pas parti : la connexion n’est pas encore prête. Réessayez dans un instant.',
  'call.play': 'Touchez pour activer le son',
  'call.waiting.patient': 'En attente du patient…',

  // Kiné dashboard
  'app.skip': 'Aller au contenu',
  'app.login.title': 'Connexion',
  'app.login.email': 'Adresse e-mail',
  'app.login.password': 'Mot de passe',
  'app.login.submit': 'Se connecter',
  'app.login.or': 'ou',
  'app.login.oidc': 'Se connecter avec {provider}',
  'app.login.oidc.hint': 'Carte CPS ou application e-CPS.',
  'app.patient.ins': 'Identité nationale de santé (INS)',
  'app.patient.ins.none': 'Aucune INS enregistrée : les documents identifient le patient par son nom seulement.',
  'app.patient.ins.status.qualifiee': 'Identité qualifiée : l’INS figure sur les documents et les exports.',
  'app.patient.ins.status.recuperee': 'Identité récupérée, pas encore vérifiée sur une pièce d’identité : l’INS ne figure pas encore sur les documents.',
  'app.patient.ins.status.validee': 'Identité validée sur une pièce d’identité, INS pas encore récupérée : rien ne figure sur les documents.',
  'app.patient.ins.status.provisoire': 'Identité provisoire : ni vérifiée ni récupérée. Rien ne figure sur les documents.',
  'app.patient.ins.matricule': 'Matricule INS (NIR ou NIA, 15 caractères)',
  'app.patient.ins.oid': 'Type',
  'app.patient.ins.oid.nir': 'NIR',
  'app.patient.ins.oid.nia': 'NIA (numéro temporaire)',
  'app.patient.ins.oid.test': 'NIR de test',
  'app.patient.ins.oid.demo': 'NIR de démonstration',
  'app.patient.ins.statusLabel': 'Statut de l’identité',
  'app.patient.ins.opt.provisoire': 'Provisoire',
  'app.patient.ins.opt.recuperee': 'Récupérée (téléservice INSi)',
  'app.patient.ins.opt.validee': 'Validée (pièce d’identité)',
  'app.patient.ins.opt.qualifiee': 'Qualifiée (INSi et pièce d’identité)',
  'app.patient.ins.birth_names': 'Nom(s) de naissance',
  'app.patient.ins.first_names': 'Prénom(s) de naissance',
  'app.patient.ins.sex': 'Sexe',
  'app.patient.ins.sex.M': 'Masculin',
  'app.patient.ins.sex.F': 'Féminin',
  'app.patient.ins.sex.I': 'Indéterminé',
  'app.patient.ins.birth_place': 'Lieu de naissance (code INSEE)',
  'app.patient.ins.birth_date': 'Date de naissance : celle du dossier',
  'app.patient.ins.traits': '{names}, {first} — {sex}, né(e) le {date}, lieu {place}',
  'app.patient.ins.save': 'Enregistrer l’identité',
  'app.patient.ins.noinsi': 'Ce service n’interroge pas le téléservice INSi : saisissez le statut obtenu dans votre logiciel.',
  'app.logout': 'Se déconnecter',
  'app.nav': 'Navigation principale',
  'app.nav.today': 'Séances',
  'app.nav.patients': 'Patients',
  'app.nav.billing': 'Facturation',
  'app.today.title': 'Séances du {date}',
  'app.today.day': 'Jour',
  'app.today.empty': 'Aucune séance ce jour-là.',
  'app.today.schedule': 'Programmer une séance',
  'app.session.time': 'Heure',
  'app.session.patient': 'Patient',
  'app.session.act': 'Acte',
  'app.session.billing': 'Prise en charge',
  'app.session.status': 'État',
  'app.session.actions': 'Actions',
  'app.session.status.scheduled': 'Prévue',
  'app.session.status.live': 'En cours',
  'app.session.status.ended': 'Terminée',
  'app.session.status.cancelled': 'Annulée',
  'app.session.amk': 'AMK {coef}',
  'app.session.price': '{letter} {coef} × {value} = {amount}',
  'app.session.price.hn': 'HN {amount}',
  'app.session.outcome.not_held': 'Non réalisée',
  'app.billing.reimbursable': 'Remboursable',
  'app.billing.hn': 'Hors nomenclature',
  'app.live.waiting': '{name} attend en salle d’attente',
  'app.live.incall': 'Patient en appel',
  'app.live.connected': 'Patient connecté',
  'app.live.offline': 'Patient absent',
  'app.live.kine': 'Vous êtes dans la salle',
  'app.field.invalid': '{field} : cette valeur n’est pas acceptée. Vérifiez-la.',
  'app.action.admit': 'Faire entrer',
  'app.action.join': 'Rejoindre l’appel',
  'app.action.link': 'Lien patient',
  'app.action.record': 'Dossier de séance',
  'app.action.cancel': 'Annuler la séance',
  'app.action.cancel.confirm': 'Annuler cette séance ? Le lien du patient ne fonctionnera plus.',
  'app.action.end': 'Terminer',
  'app.waiting.announce': '{name} attend : faites-le entrer.',
  'app.waiting.title': '({count}) Patient en attente',
  'app.schedule.title': 'Programmer une séance',
  'app.schedule.patient': 'Patient',
  'app.schedule.patient.none': 'Créez d’abord un patient.',
  'app.schedule.act': 'Acte (NGAP)',
  'app.schedule.act.option': '{label} ({letter} {coef})',
  'app.schedule.act.not_remote': '{label} — au cabinet uniquement',
  'app.schedule.date': 'Date',
  'app.schedule.share': 'Part de télésoin de l’année (plafond conventionnel)',
  'app.schedule.time': 'Heure',
  'app.schedule.auto_admit': 'Faire entrer le patient automatiquement',
  'app.schedule.consent_on_join': 'Demander le consentement au patient sur la page de connexion',
  'app.schedule.submit': 'Programmer',
  'app.link.title': 'Lien de connexion pour {name}',
  'app.link.label': 'Lien à envoyer au patient',
  'app.link.copy': 'Copier le lien',
  'app.link.copied': 'Lien copié.',
  'app.link.copy.failed': 'Copie impossible : sélectionnez le lien et copiez-le.',
  'app.link.mail': 'Préparer un e-mail',
  'app.link.mail.subject': 'Votre séance de kinésithérapie à distance',
  'app.link.mail.body': 'Bonjour,\n\nVotre séance de kinésithérapie à distance aura lieu le {date} à {time}.\nAu moment du rendez-vous, ouvrez ce lien sur un téléphone, une tablette ou un ordinateur avec caméra :\n{url}\n\nÀ bientôt,\n{kine}',
  'app.link.validity': 'Valable du {from} au {to}.',
  'app.patients.title': 'Patients',
  'app.patients.empty': 'Aucun patient pour l’instant.',
  'app.patients.new': 'Nouveau patient',
  'app.patients.name': 'Nom affiché',
  'app.patients.birth': 'Date de naissance',
  'app.patients.autonomy': 'Perte d’autonomie (un aidant doit être présent)',
  'app.patients.gp': 'Médecin traitant (nom, e-mail ou téléphone)',
  'app.patients.departement': 'Département du patient (pour le territoire, ex. 75)',
  'app.patients.create': 'Créer le patient',
  'app.patients.open': 'Ouvrir le dossier de {name}',
  'app.patient.age': '{age} ans',
  'app.patient.minor': 'Mineur : un parent doit être présent',
  'app.patient.autonomy': 'Perte d’autonomie : un aidant doit être présent',
  'app.patient.gp': 'Médecin traitant : {gp}',
  'app.patient.gp.none': 'Médecin traitant : non renseigné',
  'app.patient.back': 'Retour à la liste des patients',
  'app.patient.visits': 'Séances au cabinet',
  'app.patient.visits.empty': 'Aucune séance au cabinet enregistrée : le télésoin sera refusé.',
  'app.patient.visit.date': 'Date de la séance au cabinet',
  'app.patient.visit.kind': 'Type',
  'app.patient.visit.bilan': 'Bilan',
  'app.patient.visit.session': 'Séance',
  'app.patient.visit.hospital_bilan': 'Bilan de sortie d’hospitalisation (par un kinésithérapeute, avant la sortie)',
  'app.patient.visit.add': 'Ajouter la séance au cabinet',
  'app.patient.consents': 'Consentements au télésoin',
  'app.patient.consents.empty': 'Aucun consentement enregistré.',
  'app.patient.consent.line': '{method}, le {date} (texte {version})',
  'app.patient.consent.by.kine': 'Recueilli par vous',
  'app.patient.consent.by.patient': 'Donné par le patient',
  'app.patient.consent.by.representative': 'Donné par {name} ({relation}), représentant légal',
  'app.patient.consent.rep.name': 'Nom du représentant légal qui consent',
  'app.patient.consent.rep.relation': 'Son lien avec le patient (mère, père, tuteur…)',
  'app.patient.consent.withdrawn': 'Retiré le {date}',
  'app.patient.consent.method': 'Comment le patient a donné son accord',
  'app.patient.consent.oral': 'Oralement',
  'app.patient.consent.written': 'Par écrit',
  'app.patient.consent.join_page': 'Sur la page de connexion',
  'app.patient.consent.add': 'Enregistrer le consentement',
  'app.patient.consent.withdraw': 'Retirer ce consentement',
  'app.patient.consent.withdraw.confirm': 'Retirer ce consentement ? Une séance en cours s’arrêtera.',
  'app.patient.prescriptions': 'Prescriptions',
  'app.patient.prescriptions.empty': 'Aucune prescription : la séance sera hors nomenclature.',
  'app.patient.prescription.line': 'Prescription du {date}',
  'app.patient.prescription.old': 'plus d’un an',
  'app.patient.prescription.date': 'Date de la prescription',
  'app.patient.prescription.add': 'Ajouter la prescription',
  'app.patient.saved': 'Enregistré.',
  'app.call.title': 'Séance avec {name}',
  'app.call.back': 'Retour aux séances',
  'app.call.ended': 'Séance terminée. Durée facturable : {duration}',
  'app.record.title': 'Dossier de séance',
  'app.record.status': 'État',
  'app.record.act': 'Acte',
  'app.record.billing': 'Prise en charge',
  'app.record.rpps': 'RPPS du kinésithérapeute',
  'app.record.consent': 'Consentement',
  'app.record.presence': 'Présence attestée',
  'app.record.price_accepted': 'Tarif annoncé et accepté le',
  'app.record.started': 'Début',
  'app.record.ended': 'Fin',
  'app.record.billable': 'Durée facturable',
  'app.record.provisional': 'Durée provisoire (séance en cours)',
  'app.record.notyet': 'pas encore calculée',
  'app.record.finalized': 'Clôturé le',
  'app.record.incidents': 'Incidents techniques',
  'app.record.incidents.none': 'Aucun incident.',
  'app.record.events': 'Journal',
  'app.record.event.at': 'Heure',
  'app.record.event.who': 'Qui',
  'app.record.event.what': 'Événement',
  'app.record.event.detail': 'Détail',
  'app.record.end': 'Terminer la séance',
  'app.record.back': 'Retour aux séances',
  'app.record.patient': 'Patient',
  'app.record.when': 'Prévue le',
  'app.record.incidents.count': 'Incidents techniques pendant la séance : {count}. Ils figurent dans le compte rendu PDF.',
  'app.record.report': 'Compte rendu',
  'app.record.report.notyet': 'Le compte rendu s’écrit une fois la séance terminée.',
  'app.record.report.none': 'Pas encore de compte rendu pour cette séance.',
  'app.record.report.text': 'Compte rendu de la séance',
  'app.record.report.amend.text': 'Nouvelle version du compte rendu',
  'app.record.report.save': 'Enregistrer le compte rendu',
  'app.record.report.amend': 'Amender le compte rendu',
  'app.record.report.amend.save': 'Enregistrer l’amendement',
  'app.record.report.amend.hint': 'L’amendement ajoute une nouvelle version. Les versions précédentes restent conservées et visibles.',
  'app.record.report.required': 'Écrivez le compte rendu avant d’enregistrer.',
  'app.record.report.versions': 'Versions du compte rendu, la plus récente en premier',
  'app.record.report.version': 'Version {version}',
  'app.record.report.written': 'écrite le {date}',
  'app.record.report.current': 'En vigueur',
  'app.record.report.previous': 'Remplacée',
  'app.record.report.saved': 'Compte rendu enregistré (version {version}).',
  'app.record.docs': 'Documents',
  'app.record.docs.report': 'Ouvrir le compte rendu (PDF)',
  'app.record.docs.invoice': 'Ouvrir la facture (PDF)',
  'app.record.docs.newtab': '(s’ouvre dans un nouvel onglet)',
  'app.record.docs.notyet': 'Les documents sont disponibles une fois la séance terminée.',
  'app.record.docs.trace': 'Le PDF reprend la trace de la séance (décret 2021-707) : date, heure, professionnels, acte et incidents techniques.',
  'app.record.docs.invoice.hint': 'Séance hors nomenclature : la facture reprend le prix fixé pour la séance, sinon votre prix habituel (page Facturation).',
  'app.schedule.direct': 'Accès direct (sans ordonnance)',
  'app.schedule.direct.none': 'Non : séance sur ordonnance',
  'app.schedule.direct.acute_low_back_pain': 'Lombalgie aiguë',
  'app.schedule.direct.ankle_sprain': 'Entorse de cheville',
  'app.schedule.direct.hint': 'Remboursé seulement si vous avez déclaré un protocole de coopération (page Facturation).',
  'app.schedule.hn_price': 'Prix si la séance est hors nomenclature, en euros (facultatif)',
  'app.schedule.hn_price.hint': 'Laissez vide pour appliquer votre prix habituel (page Facturation).',
  'app.link.billing': 'Prise en charge de la séance',
  'app.price.invalid': 'Indiquez un prix en euros, par exemple 30 ou 32,50.',
  'app.invoicing.title': 'Facturation',
  'app.invoicing.period': 'Période',
  'app.invoicing.from': 'Du',
  'app.invoicing.to': 'Au',
  'app.invoicing.show': 'Afficher',
  'app.invoicing.share': 'Part de télésoin',
  'app.invoicing.share.over': 'Part de télésoin : {percent} % — au-delà du plafond conventionnel de {cap} %',
  'app.invoicing.share.ok': 'Part de télésoin : {percent} % — dans le plafond conventionnel de {cap} %',
  'app.invoicing.share.near': 'Attention : part de télésoin {percent} %, au bord du plafond conventionnel de {cap} % — une séance à distance de plus le dépasserait.',
  'app.invoicing.departement': 'Département du cabinet (territoire d’exercice, ex. 75)',
  'app.invoicing.share.detail': 'Séances à distance : {remote}. Toutes séances (cabinet et télésoin) : {total}.',
  'app.invoicing.share.advice': 'Prévoyez davantage de séances au cabinet sur cette période.',
  'app.invoicing.share.none': 'Aucune séance sur cette période.',
  'app.invoicing.exports': 'Exports',
  'app.invoicing.exports.hint': 'Une ligne par séance terminée : date, durée facturable, acte, prise en charge et montant. Le format FHIR R4 sert aux logiciels de dossier patient.',
  'app.invoicing.csv': 'Télécharger le CSV',
  'app.invoicing.csv_fr': 'CSV pour tableur français (Excel, LibreOffice)',
  'app.invoicing.fhir': 'Télécharger l’export FHIR (JSON)',
  'app.invoicing.downloaded': 'Téléchargement lancé.',
  'app.invoicing.settings': 'Vos réglages de facturation',
  'app.invoicing.protocol': 'J’ai déclaré un protocole de coopération : l’accès direct est remboursé',
  'app.invoicing.price': 'Prix habituel d’une séance hors nomenclature, en euros',
  'app.invoicing.price.hint': 'Repris sur la facture quand la séance n’a pas de prix propre. 0 : aucun prix.',
  'app.invoicing.save': 'Enregistrer les réglages',
  'app.invoicing.saved': 'Réglages enregistrés.',
  'role.kine': 'Kinésithérapeute',
  'role.patient': 'Patient',
  'role.companion': 'Accompagnant',
  'role.none': 'Serveur',

  // Embedded call
  'embed.title': 'Séance de télésoin',
  'embed.waiting_token': 'Préparation de la séance…',
  'embed.admit': 'Faire entrer le patient',
  // Reaching the patient: contact, "Envoyer le lien", message states, the page before the window
  'app.contact.title': 'Pour joindre le patient',
  'app.contact.phone': 'Téléphone mobile',
  'app.contact.phone.hint': 'Par exemple 06 12 34 56 78',
  'app.contact.email': 'E-mail',
  'app.contact.preferred': 'Envoyer le lien et les rappels par',
  'app.contact.pref.both': 'SMS et e-mail',
  'app.contact.pref.sms': 'SMS',
  'app.contact.pref.email': 'E-mail',
  'app.contact.pref.none': 'Ne rien envoyer',
  'app.contact.save': 'Enregistrer',
  'app.contact.saved': 'Coordonnées enregistrées.',
  'app.send.title': 'Envoyer le lien au patient',
  'app.send.button': 'Envoyer le lien',
  'app.send.sending': 'Envoi en cours…',
  'app.send.reminders': 'Rappels automatiques : {list} avant la séance.',
  'app.send.reminders.none': 'Pas de rappel automatique.',
  'app.reminders.title': 'Rappels au patient',
  'app.reminders.channels': 'Le patient reçoit un rappel par e-mail ou SMS (selon sa fiche) avant chaque séance, avec le lien.',
  'app.reminders.unconfigured': 'L’envoi par e-mail et par SMS n’est pas configuré sur ce serveur : les rappels ne partiront pas.',
  'app.reminders.field': 'Envoyer un rappel avant la séance',
  'app.reminders.hint': 'Séparés par des virgules : « 1 j, 1 h » = la veille et une heure avant ; « 30 min ». Au plus 5. Vide : aucun rappel.',
  'app.reminders.invalid': 'Écrivez des durées comme « 1 j », « 2 h » ou « 30 min », séparées par des virgules.',
  'app.reminders.save': 'Enregistrer les rappels',
  'app.reminders.saved': 'Rappels enregistrés, pour les séances déjà planifiées aussi.',
  'app.reminders.saved.none': 'Plus aucun rappel automatique.',
  'app.send.why.not_configured': 'L’envoi par e-mail et par SMS n’est pas configuré sur ce serveur : copiez le lien et envoyez-le vous-même.',
  'app.send.why.no_contact': 'Ce patient n’a ni e-mail ni téléphone mobile : ajoutez-les dans sa fiche.',
  'app.send.why.none': 'Le patient ne souhaite rien recevoir (voir sa fiche).',
  'app.send.contact.edit': 'Modifier ses coordonnées',
  'app.messages.title': 'Messages envoyés',
  'app.messages.empty': 'Aucun message pour cette séance.',
  'app.messages.line': '{kind} par {channel} — {state}',
  'app.message.kind.invitation': 'Invitation',
  'app.message.kind.reminder': 'Rappel',
  'app.message.kind.cancelled': 'Annulation',
  'app.message.kind.moved': 'Changement d’horaire',
  'app.message.channel.email': 'e-mail',
  'app.message.channel.sms': 'SMS',
  'app.message.state.pending': 'prévu le {date}',
  'app.message.state.sent': 'envoyé le {date}',
  'app.message.state.retrying': 'pas encore envoyé ({reason}) : nouvel essai le {date}',
  'app.message.state.failed': 'échec : {reason}',
  'app.message.state.skipped': 'non envoyé : {reason}',
  'app.message.state.cancelled': 'annulé',
  'join.before.title': 'Votre séance est prévue le {date} à {time}',
  'join.before.tz': 'Heure de Paris.',
  'join.before.with': 'Avec {kine}.',
  'join.before.opens': 'La salle ouvre dans {left}. Cette page s’ouvrira d’elle-même : vous pouvez la laisser ouverte.',
  'join.before.prepare': 'Pour la séance, prévoyez : un endroit calme, votre téléphone chargé, de la place pour bouger.',
  'join.before.test': 'Essayer ma caméra et mon son maintenant',
  'join.before.test.stop': 'Arrêter l’essai',
  'join.before.test.ok': 'Vous devez vous voir ci-dessus, et la barre doit bouger quand vous parlez.',
  'join.before.open': 'C’est l’heure : la salle est ouverte.',
};

/** @typedef {keyof typeof fr} Key */

/** @type {Record<Key, string>} */
const en = {
  'app.title': 'Physio telehealth',
  'lang.switch': 'Français',
  'lang.switch.label': 'Passer en français',
  'common.loading': 'Loading…',
  'common.retry': 'Try again',
  'common.reload': 'Reload the page',
  'common.close': 'Close',
  'common.cancel': 'Cancel',
  'common.save': 'Save',
  'common.yes': 'Yes',
  'common.no': 'No',
  'common.error.network': 'The service does not answer. Check your Internet connection, then try again.',
  'common.error.generic': 'Something went wrong. Try again.',

  'join.title': 'Your physiotherapy session',
  'join.notoken.title': 'Incomplete link',
  'join.notoken.text': 'Open the complete link you received from the practice, unchanged.',
  'join.unsupported.title': 'This browser cannot do video',
  'join.unsupported.text': 'Open the link in a recent browser: Chrome, Edge, Firefox or Safari.',
  'join.browsers': 'Works with recent Chrome, Edge, Firefox and Safari, on a computer, tablet or phone. Nothing to install.',
  'join.intro.hello': 'Hello',
  'join.intro.with': 'Remote session with {kine}',
  'join.intro.when': '{date} at {time}',
  'join.intro.act': 'Care: {act}',
  'join.billing.reimbursable': 'Reimbursed by the Assurance Maladie, like a session at the practice.',
  'join.billing.hn': 'Not reimbursed by the Assurance Maladie (hors nomenclature). Your physiotherapist will give you an invoice.',
  'join.price.amount': 'Price of the session: {amount}',
  'join.price.accept': 'I have read this price and I accept it',
  'join.price.required': 'Tick the box to accept the price before the session.',
  'join.intro.next': 'Check my camera and microphone',
  'join.devices.title': 'Let us check your camera and microphone',
  'join.devices.preview': 'Your picture',
  'join.devices.mic': 'Your microphone level: speak, the bar should move.',
  'join.devices.mic.label': 'Microphone level',
  'join.devices.speaker': 'Test the sound',
  'join.devices.speaker.playing': 'You should hear a sound. If not, turn the volume up.',
  'join.devices.asking': 'Your browser will ask for the camera and the microphone. Answer “Allow”.',
  'join.devices.denied.title': 'The camera and the microphone are blocked',
  'join.devices.denied.text': 'Tap the padlock left of the page address, choose “Allow” for the camera and the microphone, then tap “Try again”.',
  'join.devices.nocamera.title': 'No camera found',
  'join.devices.nocamera.text': 'Plug in a camera or use a phone or a tablet. You can also go on with sound only.',
  'join.devices.audioonly': 'Go on with sound only',
  'join.devices.busy.title': 'The camera is already in use',
  'join.devices.busy.text': 'Close the other apps that use the camera (WhatsApp, Zoom…), then tap “Try again”.',
  'join.devices.join': 'All good: join the session',
  'join.connecting': 'Connecting to the session…',
  'join.consent.title': 'Your agreement to telehealth',
  'join.consent.check': 'I have read this text and I agree.',
  'join.consent.submit': 'I agree: join the session',
  'join.consent.required': 'Tick the box to give your agreement.',
  'join.consent.version': 'Text version: {version}',
  'join.consent.minor.title': 'The parent’s agreement to telehealth',
  'join.consent.minor': 'For a person under 18, the parent or legal representative gives the agreement. Enter your name and your relation to the patient.',
  'join.consent.rep.name': 'Your full name (parent or legal representative)',
  'join.consent.rep.relation': 'Your relation to the patient (mother, father, guardian…)',
  'join.consent.rep.check': 'I am their parent or legal representative, I have read this text and I agree.',
  'join.consent.rep.required': 'Enter your name and your relation to the patient.',
  'join.consent.rep.tick': 'Tick the box to give your agreement as parent or legal representative.',
  'join.attest.parent.title': 'A parent must be present',
  'join.attest.parent.text': 'For a person under 18, a parent or an authorised adult stays nearby for the whole session.',
  'join.attest.parent.check': 'I confirm that a parent or an authorised adult is present.',
  'join.attest.aidant.title': 'Your caregiver must be present',
  'join.attest.aidant.text': 'For your safety, the person who helps you every day stays next to you for the whole session.',
  'join.attest.aidant.check': 'I confirm that my caregiver is present.',
  'join.attest.submit': 'Confirm',
  'join.attest.required': 'Tick the box to confirm.',
  'join.attest.name': 'Full name of the person present',
  'join.attest.relation': 'Their relation to the patient (mother, son, caregiver…)',
  'join.attest.named': 'Enter the name of the person present and their relation to the patient.',
  'join.waiting.title': 'Waiting room',
  'join.waiting.awaiting_admission': 'Your physiotherapist will let you in.',
  'join.waiting.kine_absent': 'Your physiotherapist is not there yet. Stay on this page: you will come in as soon as they arrive.',
  'join.waiting.calm': 'You have nothing to do. Keep this page open.',
  'join.refused.title': 'The session cannot start',
  'join.refused.code': 'Code: {code}',
  'join.refused.retry_in': 'You can try again in {seconds} s.',
  'join.refused.retry_now': 'You can try again now.',
  'join.replaced.title': 'Session opened on another device',
  'join.replaced.text': 'This session goes on on another device. To take it back here, tap the button.',
  'join.replaced.resume': 'Take the session back here',
  'join.lost.title': 'Connection lost',
  'join.lost.text': 'The connection could not be restored. Check your Internet connection, then tap the button.',
  'join.lost.next': 'If it still does not work, call your practice: the session can resume later with the same link.',
  'join.left.title': 'You left the session',
  'join.left.text': 'Your physiotherapist may still be there. You can come back at once, without the checks again.',
  'join.left.back': 'Go back into the session',
  'join.left.close': 'If the session is over, you can close this page.',
  'join.devices.nodevice.title': 'No microphone or camera found',
  'join.devices.nodevice.text': 'This device has no microphone or camera, or they are unplugged. Plug them in, or open the link on a phone or a tablet, then tap “Try again”.',
  'join.devices.other.title': 'The camera and the microphone do not respond',
  'join.devices.other.text': 'Close the other tabs and apps, then tap “Try again”. If it goes on, restart the device.',
  'join.ended.title': 'The session is over',
  'join.ended.duration': 'Session length: {duration}',
  'join.ended.thanks': 'Thank you. You can close this page.',
  'join.ended.left': 'You left the session.',

  'call.region': 'Video call',
  'call.remote': 'Video of the other person',
  'call.remote.kine': 'Your physiotherapist',
  'call.remote.patient': 'Your patient',
  'call.self': 'Your picture',
  'call.controls': 'Call controls',
  'call.mic.on': 'Mute the microphone',
  'call.mic.off': 'Unmute the microphone',
  'call.mic.muted': 'Microphone muted',
  'call.cam.on': 'Turn the camera off',
  'call.cam.off': 'Turn the camera on',
  'call.hangup': 'Hang up',
  'call.end': 'End the session',
  'call.hangup.confirm': 'Do you really want to leave the session?',
  'call.quality': 'Network',
  'call.quality.good': 'Network: good',
  'call.quality.medium': 'Network: fair',
  'call.quality.poor': 'Network: weak',
  'call.quality.unknown': 'Network: measuring…',
  'call.connecting': 'Connecting the video…',
  'call.reconnecting': 'Connection lost. Reconnecting, do not close the page…',
  'call.peer.reconnecting': 'The other person is reconnecting…',
  'call.peer.left': 'The other person left the call.',
  'call.patient.left': 'Your patient left the call. Their link stays valid during the session: wait for them, or end the session.',
  'call.patient.reconnecting': 'Your patient’s connection dropped. Reconnecting, wait a few seconds…',
  'call.kine.left': 'Your physiotherapist left the room. Stay on this page: the session resumes when they are back.',
  'call.kine.reconnecting': 'Your physiotherapist’s connection dropped. Wait a few seconds, the session resumes by itself.',
  'call.waiting.patient.early': 'You are early. Your patient can come in from {time}. You may leave the room and come back.',
  'call.leave': 'Leave the room',
  'call.end.confirm.title': 'End the session?',
  'call.end.confirm.text': 'The session ends for everyone and the billable time stops. To step out without ending, choose “Leave the room” instead.',
  'call.end.confirm.yes': 'Yes, end the session',
  'call.end.confirm.no': 'Go on with the session',
  'call.hangup.confirm.title': 'Hang up?',
  'call.hangup.confirm.text': 'You leave the session. You can come back with the same link until it is over.',
  'call.hangup.confirm.yes': 'Yes, hang up',
  'call.hangup.confirm.no': 'Stay in the session',
  'call.cam.switch': 'Switch camera',
  'call.remote.mic_off': 'Microphone off',
  'call.remote.cam_off': 'Camera off',
  'call.screen.remote': 'Screen shared by your physiotherapist',
  'call.share.start': 'Share the screen',
  'call.share.stop': 'Stop sharing',
  'call.share.active': 'You are sharing your screen. The other person sees it large.',
  'call.timer': 'Call duration',
  'call.fullscreen': 'Full screen',
  'call.fullscreen.exit': 'Exit full screen',
  'call.peer.net.poor': 'The other person’s network is weak',
  'call.peer.net.lost': 'The other person’s connection dropped',
  'call.chat.open': 'Messages',
  'call.chat.close': 'Close messages',
  'call.chat.title': 'Messages',
  'call.chat.private': 'Messages go straight to the other person. They are not stored.',
  'call.chat.label': 'Your message',
  'call.chat.send': 'Send',
  'call.chat.me': 'You',
  'call.chat.kine': 'Physiotherapist',
  'call.chat.patient': 'Patient',
  'call.chat.new': 'New message:',
  'call.chat.unread': 'Messages, {n} unread',
  'call.chat.unavailable': 'The message was not sent: the connection is not ready yet. Try again in a moment.',
  'call.play': 'Tap to turn the sound on',
  'call.waiting.patient': 'Waiting for the patient…',

  'app.skip': 'Skip to content',
  'app.login.title': 'Log in',
  'app.login.email': 'E-mail address',
  'app.login.password': 'Password',
  'app.login.submit': 'Log in',
  'app.login.or': 'or',
  'app.login.oidc': 'Log in with {provider}',
  'app.login.oidc.hint': 'CPS card or the e-CPS app.',
  'app.patient.ins': 'National health identity (INS)',
  'app.patient.ins.none': 'No INS recorded: documents identify the patient by name only.',
  'app.patient.ins.status.qualifiee': 'Qualified identity: the INS appears on documents and exports.',
  'app.patient.ins.status.recuperee': 'Recovered identity, not yet checked on an ID document: the INS does not appear on documents yet.',
  'app.patient.ins.status.validee': 'Identity checked on an ID document, INS not yet recovered: nothing appears on documents.',
  'app.patient.ins.status.provisoire': 'Provisional identity: neither checked nor recovered. Nothing appears on documents.',
  'app.patient.ins.matricule': 'INS number (NIR or NIA, 15 characters)',
  'app.patient.ins.oid': 'Kind',
  'app.patient.ins.oid.nir': 'NIR',
  'app.patient.ins.oid.nia': 'NIA (temporary number)',
  'app.patient.ins.oid.test': 'Test NIR',
  'app.patient.ins.oid.demo': 'Demonstration NIR',
  'app.patient.ins.statusLabel': 'Identity status',
  'app.patient.ins.opt.provisoire': 'Provisional',
  'app.patient.ins.opt.recuperee': 'Recovered (INSi teleservice)',
  'app.patient.ins.opt.validee': 'Validated (ID document)',
  'app.patient.ins.opt.qualifiee': 'Qualified (INSi and ID document)',
  'app.patient.ins.birth_names': 'Birth name(s)',
  'app.patient.ins.first_names': 'Birth first name(s)',
  'app.patient.ins.sex': 'Sex',
  'app.patient.ins.sex.M': 'Male',
  'app.patient.ins.sex.F': 'Female',
  'app.patient.ins.sex.I': 'Undetermined',
  'app.patient.ins.birth_place': 'Birth place (INSEE code)',
  'app.patient.ins.birth_date': 'Birth date: the one on record',
  'app.patient.ins.traits': '{names}, {first} — {sex}, born {date}, place {place}',
  'app.patient.ins.save': 'Save the identity',
  'app.patient.ins.noinsi': 'This service does not query the INSi teleservice: enter the status your practice software obtained.',
  'app.logout': 'Log out',
  'app.nav': 'Main navigation',
  'app.nav.today': 'Sessions',
  'app.nav.patients': 'Patients',
  'app.nav.billing': 'Billing',
  'app.today.title': 'Sessions on {date}',
  'app.today.day': 'Day',
  'app.today.empty': 'No session that day.',
  'app.today.schedule': 'Schedule a session',
  'app.session.time': 'Time',
  'app.session.patient': 'Patient',
  'app.session.act': 'Act',
  'app.session.billing': 'Coverage',
  'app.session.status': 'Status',
  'app.session.actions': 'Actions',
  'app.session.status.scheduled': 'Scheduled',
  'app.session.status.live': 'Live',
  'app.session.status.ended': 'Ended',
  'app.session.status.cancelled': 'Cancelled',
  'app.session.amk': 'AMK {coef}',
  'app.session.price': '{letter} {coef} × {value} = {amount}',
  'app.session.price.hn': 'HN {amount}',
  'app.session.outcome.not_held': 'Not held',
  'app.billing.reimbursable': 'Reimbursable',
  'app.billing.hn': 'Not reimbursed (HN)',
  'app.live.waiting': '{name} is in the waiting room',
  'app.live.incall': 'Patient in the call',
  'app.live.connected': 'Patient connected',
  'app.live.offline': 'Patient not here',
  'app.live.kine': 'You are in the room',
  'app.field.invalid': '{field}: this value is not accepted. Check it.',
  'app.action.admit': 'Let in',
  'app.action.join': 'Join the call',
  'app.action.link': 'Patient link',
  'app.action.record': 'Session record',
  'app.action.cancel': 'Cancel the session',
  'app.action.cancel.confirm': 'Cancel this session? The patient link will stop working.',
  'app.action.end': 'End',
  'app.waiting.announce': '{name} is waiting: let them in.',
  'app.waiting.title': '({count}) Patient waiting',
  'app.schedule.title': 'Schedule a session',
  'app.schedule.patient': 'Patient',
  'app.schedule.patient.none': 'Create a patient first.',
  'app.schedule.act': 'Act (NGAP)',
  'app.schedule.act.option': '{label} ({letter} {coef})',
  'app.schedule.act.not_remote': '{label} — in person only',
  'app.schedule.date': 'Date',
  'app.schedule.share': 'Telehealth share of the year (convention cap)',
  'app.schedule.time': 'Time',
  'app.schedule.auto_admit': 'Let the patient in automatically',
  'app.schedule.consent_on_join': 'Ask the patient for consent on the join page',
  'app.schedule.submit': 'Schedule',
  'app.link.title': 'Join link for {name}',
  'app.link.label': 'Link to send to the patient',
  'app.link.copy': 'Copy the link',
  'app.link.copied': 'Link copied.',
  'app.link.copy.failed': 'Cannot copy: select the link and copy it.',
  'app.link.mail': 'Prepare an e-mail',
  // The e-mail goes to a French patient whatever language the kiné reads the dashboard in.
  'app.link.mail.subject': 'Votre séance de kinésithérapie à distance',
  'app.link.mail.body': 'Bonjour,\n\nVotre séance de kinésithérapie à distance aura lieu le {date} à {time}.\nAu moment du rendez-vous, ouvrez ce lien sur un téléphone, une tablette ou un ordinateur avec caméra :\n{url}\n\nÀ bientôt,\n{kine}',
  'app.link.validity': 'Valid from {from} to {to}.',
  'app.patients.title': 'Patients',
  'app.patients.empty': 'No patient yet.',
  'app.patients.new': 'New patient',
  'app.patients.name': 'Display name',
  'app.patients.birth': 'Date of birth',
  'app.patients.autonomy': 'Loss of autonomy (a caregiver must be present)',
  'app.patients.gp': 'GP (name, e-mail or phone)',
  'app.patients.departement': 'Patient’s département (for the territory, e.g. 75)',
  'app.patients.create': 'Create the patient',
  'app.patients.open': 'Open the file of {name}',
  'app.patient.age': '{age} years old',
  'app.patient.minor': 'Minor: a parent must be present',
  'app.patient.autonomy': 'Loss of autonomy: a caregiver must be present',
  'app.patient.gp': 'GP: {gp}',
  'app.patient.gp.none': 'GP: not given',
  'app.patient.back': 'Back to the patient list',
  'app.patient.visits': 'In-person sessions',
  'app.patient.visits.empty': 'No in-person session on record: telehealth will be refused.',
  'app.patient.visit.date': 'Date of the in-person session',
  'app.patient.visit.kind': 'Kind',
  'app.patient.visit.bilan': 'Assessment (bilan)',
  'app.patient.visit.session': 'Session',
  'app.patient.visit.hospital_bilan': 'Hospital discharge assessment (by a physiotherapist, before discharge)',
  'app.patient.visit.add': 'Add the in-person session',
  'app.patient.consents': 'Consents to telehealth',
  'app.patient.consents.empty': 'No consent on record.',
  'app.patient.consent.line': '{method}, on {date} (text {version})',
  'app.patient.consent.by.kine': 'Recorded by you',
  'app.patient.consent.by.patient': 'Given by the patient',
  'app.patient.consent.by.representative': 'Given by {name} ({relation}), legal representative',
  'app.patient.consent.rep.name': 'Name of the legal representative who consents',
  'app.patient.consent.rep.relation': 'Their relation to the patient (mother, father, guardian…)',
  'app.patient.consent.withdrawn': 'Withdrawn on {date}',
  'app.patient.consent.method': 'How the patient agreed',
  'app.patient.consent.oral': 'Orally',
  'app.patient.consent.written': 'In writing',
  'app.patient.consent.join_page': 'On the join page',
  'app.patient.consent.add': 'Record the consent',
  'app.patient.consent.withdraw': 'Withdraw this consent',
  'app.patient.consent.withdraw.confirm': 'Withdraw this consent? A live session will stop.',
  'app.patient.prescriptions': 'Prescriptions',
  'app.patient.prescriptions.empty': 'No prescription: the session will not be reimbursed (HN).',
  'app.patient.prescription.line': 'Prescription of {date}',
  'app.patient.prescription.old': 'over a year old',
  'app.patient.prescription.date': 'Date of the prescription',
  'app.patient.prescription.add': 'Add the prescription',
  'app.patient.saved': 'Saved.',
  'app.call.title': 'Session with {name}',
  'app.call.back': 'Back to the sessions',
  'app.call.ended': 'Session over. Billable duration: {duration}',
  'app.record.title': 'Session record',
  'app.record.status': 'Status',
  'app.record.act': 'Act',
  'app.record.billing': 'Coverage',
  'app.record.rpps': 'Physiotherapist RPPS',
  'app.record.consent': 'Consent',
  'app.record.presence': 'Attested presence',
  'app.record.price_accepted': 'Price announced and accepted on',
  'app.record.started': 'Start',
  'app.record.ended': 'End',
  'app.record.billable': 'Billable duration',
  'app.record.provisional': 'Provisional duration (session live)',
  'app.record.notyet': 'not computed yet',
  'app.record.finalized': 'Closed on',
  'app.record.incidents': 'Technical incidents',
  'app.record.incidents.none': 'No incident.',
  'app.record.events': 'Log',
  'app.record.event.at': 'Time',
  'app.record.event.who': 'Who',
  'app.record.event.what': 'Event',
  'app.record.event.detail': 'Detail',
  'app.record.end': 'End the session',
  'app.record.back': 'Back to the sessions',
  'app.record.patient': 'Patient',
  'app.record.when': 'Scheduled for',
  'app.record.incidents.count': 'Technical incidents during the session: {count}. They appear in the PDF report.',
  'app.record.report': 'Session report (compte rendu)',
  'app.record.report.notyet': 'The report is written once the session is over.',
  'app.record.report.none': 'No report for this session yet.',
  'app.record.report.text': 'Report of the session',
  'app.record.report.amend.text': 'New version of the report',
  'app.record.report.save': 'Save the report',
  'app.record.report.amend': 'Amend the report',
  'app.record.report.amend.save': 'Save the amendment',
  'app.record.report.amend.hint': 'An amendment adds a new version. Earlier versions are kept and stay visible.',
  'app.record.report.required': 'Write the report before saving.',
  'app.record.report.versions': 'Versions of the report, newest first',
  'app.record.report.version': 'Version {version}',
  'app.record.report.written': 'written on {date}',
  'app.record.report.current': 'In force',
  'app.record.report.previous': 'Superseded',
  'app.record.report.saved': 'Report saved (version {version}).',
  'app.record.docs': 'Documents',
  'app.record.docs.report': 'Open the report (PDF)',
  'app.record.docs.invoice': 'Open the invoice (PDF)',
  'app.record.docs.newtab': '(opens in a new tab)',
  'app.record.docs.notyet': 'Documents are available once the session is over.',
  'app.record.docs.trace': 'The PDF carries the session trace (décret 2021-707): date, time, professionals, act and technical incidents.',
  'app.record.docs.invoice.hint': 'Not reimbursed (HN): the invoice uses the price set for the session, else your usual price (Billing page).',
  'app.schedule.direct': 'Direct access (no prescription)',
  'app.schedule.direct.none': 'No: session on prescription',
  'app.schedule.direct.acute_low_back_pain': 'Acute low back pain',
  'app.schedule.direct.ankle_sprain': 'Ankle sprain',
  'app.schedule.direct.hint': 'Reimbursed only if you declared a cooperation protocol (Billing page).',
  'app.schedule.hn_price': 'Price if the session is not reimbursed (HN), in euros (optional)',
  'app.schedule.hn_price.hint': 'Leave empty to use your usual price (Billing page).',
  'app.link.billing': 'Coverage of the session',
  'app.price.invalid': 'Enter a price in euros, for example 30 or 32.50.',
  'app.invoicing.title': 'Billing',
  'app.invoicing.period': 'Period',
  'app.invoicing.from': 'From',
  'app.invoicing.to': 'To',
  'app.invoicing.show': 'Show',
  'app.invoicing.share': 'Telehealth share',
  'app.invoicing.share.over': 'Telehealth share: {percent}% — above the convention cap of {cap}%',
  'app.invoicing.share.ok': 'Telehealth share: {percent}% — within the convention cap of {cap}%',
  'app.invoicing.share.near': 'Warning: telehealth share {percent}%, at the edge of the convention cap of {cap}% — one more remote session would exceed it.',
  'app.invoicing.departement': 'Practice’s département (where you practise, e.g. 75)',
  'app.invoicing.share.detail': 'Remote sessions: {remote}. All sessions (practice and telehealth): {total}.',
  'app.invoicing.share.advice': 'Plan more sessions at the practice over this period.',
  'app.invoicing.share.none': 'No session in this period.',
  'app.invoicing.exports': 'Exports',
  'app.invoicing.exports.hint': 'One row per finished session: date, billable duration, act, coverage and amount. The FHIR R4 format is for patient record software.',
  'app.invoicing.csv': 'Download the CSV',
  'app.invoicing.csv_fr': 'CSV for French spreadsheets (Excel, LibreOffice)',
  'app.invoicing.fhir': 'Download the FHIR export (JSON)',
  'app.invoicing.downloaded': 'Download started.',
  'app.invoicing.settings': 'Your billing settings',
  'app.invoicing.protocol': 'I declared a cooperation protocol: direct access is reimbursed',
  'app.invoicing.price': 'Usual price of a non-reimbursed (HN) session, in euros',
  'app.invoicing.price.hint': 'Used on the invoice when the session has no price of its own. 0: no price.',
  'app.invoicing.save': 'Save the settings',
  'app.invoicing.saved': 'Settings saved.',
  'role.kine': 'Physiotherapist',
  'role.patient': 'Patient',
  'role.companion': 'Companion',
  'role.none': 'Server',

  'embed.title': 'Telehealth session',
  'embed.waiting_token': 'Preparing the session…',
  'embed.admit': 'Let the patient in',
  'app.contact.title': 'Reaching the patient',
  'app.contact.phone': 'Mobile phone',
  'app.contact.phone.hint': 'For example 06 12 34 56 78',
  'app.contact.email': 'E-mail',
  'app.contact.preferred': 'Send the link and reminders by',
  'app.contact.pref.both': 'SMS and e-mail',
  'app.contact.pref.sms': 'SMS',
  'app.contact.pref.email': 'E-mail',
  'app.contact.pref.none': 'Send nothing',
  'app.contact.save': 'Save',
  'app.contact.saved': 'Contact details saved.',
  'app.send.title': 'Send the link to the patient',
  'app.send.button': 'Send the link',
  'app.send.sending': 'Sending…',
  'app.send.reminders': 'Automatic reminders: {list} before the session.',
  'app.send.reminders.none': 'No automatic reminder.',
  'app.reminders.title': 'Reminders to the patient',
  'app.reminders.channels': 'The patient gets a reminder by e-mail or SMS (as their file says) before each session, with the link.',
  'app.reminders.unconfigured': 'Sending by e-mail and SMS is not configured on this server: no reminder will go.',
  'app.reminders.field': 'Send a reminder before the session',
  'app.reminders.hint': 'Comma-separated: “1 d, 1 h” = the day before and one hour before; “30 min”. At most 5. Empty: no reminder.',
  'app.reminders.invalid': 'Write durations such as “1 d”, “2 h” or “30 min”, separated by commas.',
  'app.reminders.save': 'Save the reminders',
  'app.reminders.saved': 'Reminders saved, for the sessions already scheduled too.',
  'app.reminders.saved.none': 'No more automatic reminders.',
  'app.send.why.not_configured': 'Sending by e-mail and SMS is not configured on this server: copy the link and send it yourself.',
  'app.send.why.no_contact': 'This patient has no e-mail address or mobile number: add them to the patient’s file.',
  'app.send.why.none': 'The patient does not want to receive anything (see their file).',
  'app.send.contact.edit': 'Edit their contact details',
  'app.messages.title': 'Messages',
  'app.messages.empty': 'No message for this session.',
  'app.messages.line': '{kind} by {channel} — {state}',
  'app.message.kind.invitation': 'Invitation',
  'app.message.kind.reminder': 'Reminder',
  'app.message.kind.cancelled': 'Cancellation',
  'app.message.kind.moved': 'New time',
  'app.message.channel.email': 'e-mail',
  'app.message.channel.sms': 'SMS',
  'app.message.state.pending': 'due {date}',
  'app.message.state.sent': 'sent {date}',
  'app.message.state.retrying': 'not sent yet ({reason}): next try {date}',
  'app.message.state.failed': 'failed: {reason}',
  'app.message.state.skipped': 'not sent: {reason}',
  'app.message.state.cancelled': 'cancelled',
  'join.before.title': 'Your session is on {date} at {time}',
  'join.before.tz': 'Paris time.',
  'join.before.with': 'With {kine}.',
  'join.before.opens': 'The room opens in {left}. This page will open by itself: you can leave it open.',
  'join.before.prepare': 'For the session, have: a quiet place, your phone charged, room to move.',
  'join.before.test': 'Try my camera and sound now',
  'join.before.test.stop': 'Stop the test',
  'join.before.test.ok': 'You should see yourself above, and the bar should move when you speak.',
  'join.before.open': 'It is time: the room is open.',
};

/**
 * The consent text the patient agrees to, by version and language. Paragraphs.
 * @type {Record<string, Record<Lang, string[]>>}
 */
const consentTexts = {
  '2026-11-v1': {
    fr: [
      'Votre kinésithérapeute vous propose une séance à distance, par vidéo (télésoin). Elle complète vos séances au cabinet.',
      'La vidéo passe directement entre votre appareil et celui de votre kinésithérapeute, de façon chiffrée. Elle n’est pas enregistrée.',
      'Le service garde seulement la trace de la séance : date, heure, durée et acte, pour votre dossier et la facturation.',
      'Vous pouvez arrêter la séance à tout moment, et retirer votre accord en le disant à votre kinésithérapeute.',
    ],
    en: [
      'Your physiotherapist offers you a remote session by video (telehealth). It complements your sessions at the practice.',
      'The video goes directly between your device and your physiotherapist’s, encrypted. It is not recorded.',
      'The service only keeps a trace of the session: date, time, duration and act, for your file and billing.',
      'You can stop the session at any time, and withdraw your agreement by telling your physiotherapist.',
    ],
  },
};

/** Labels of session record event kinds; unknown kinds are shown as they are. */
const eventKinds = {
  fr: {
    joined: 'Connecté', admitted: 'Entré dans la séance', admitted_by_kine: 'Accepté par le kiné', refused: 'Refusé', waiting: 'En attente',
    media_connected: 'Vidéo connectée', media_disconnected: 'Vidéo coupée', left: 'Parti',
    reconnecting: 'Reconnexion', reconnected: 'Reconnecté', ended: 'Séance terminée', consent: 'Consentement',
    attest: 'Présence attestée', attested: 'Présence attestée', ice_failed: 'Échec de connexion réseau',
    hangup: 'A raccroché', replaced: 'Remplacé par un autre appareil', seat_expired: 'Place libérée',
    finalized: 'Durée clôturée', cancelled: 'Séance annulée', started: 'Séance commencée',
  },
  en: {
    joined: 'Connected', admitted: 'Let in', admitted_by_kine: 'Accepted by the physiotherapist', refused: 'Refused', waiting: 'Waiting',
    media_connected: 'Video connected', media_disconnected: 'Video cut', left: 'Left',
    reconnecting: 'Reconnecting', reconnected: 'Reconnected', ended: 'Session ended', consent: 'Consent',
    attest: 'Presence attested', attested: 'Presence attested', ice_failed: 'Network connection failure',
    hangup: 'Hung up', replaced: 'Replaced by another device', seat_expired: 'Seat released',
    finalized: 'Duration closed', cancelled: 'Session cancelled', started: 'Session started',
  },
};

/** @typedef {'fr' | 'en'} Lang */
/** @typedef {Record<string, string | number>} Params */

const STORAGE_KEY = 'telesoin.lang';
/** @type {Record<Lang, Record<Key, string>>} */
const messages = { fr, en };

/** @returns {Lang} */
function initialLang() {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (stored === 'fr' || stored === 'en') return stored;
  } catch {
    // Storage may be blocked (third-party iframe): French is the default anyway.
  }
  return 'fr';
}

/** @type {Lang} */
let lang = initialLang();
/** @type {Set<(lang: Lang) => void>} */
const listeners = new Set();

/** @returns {Lang} */
export function getLang() {
  return lang;
}

/** @param {Lang} next */
export function setLang(next) {
  if (next === lang) return;
  lang = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not persisted; the switch still applies to this page.
  }
  document.documentElement.lang = next;
  translateTree(document.body);
  for (const cb of listeners) cb(next);
}

/** @param {(lang: Lang) => void} cb @returns {() => void} unsubscribe */
export function onLangChange(cb) {
  listeners.add(cb);
  return () => listeners.delete(cb);
}

/**
 * @param {Key} key
 * @param {Params} [params]
 */
export function t(key, params) {
  const text = messages[lang][key] ?? messages.fr[key] ?? key;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/**
 * A text in both languages, for values that carry their own pair (like the server's refusals).
 * @param {Key} key
 * @returns {{fr: string, en: string}}
 */
export function both(key) {
  return { fr: messages.fr[key], en: messages.en[key] };
}

/** @param {string} key @returns {key is Key} */
export function isKey(key) {
  return key in fr;
}

/** @param {string} version @returns {string[]} paragraphs, in the current language (the newest text if unknown) */
export function consentText(version) {
  const known = consentTexts[version] ?? consentTexts[CONSENT_TEXT_VERSION];
  return known[lang];
}

/** @param {string} kind */
export function eventKindLabel(kind) {
  /** @type {Record<string, string>} */
  const labels = eventKinds[lang];
  return labels[kind] ?? kind;
}

/**
 * Sets an element's text from a key, and keeps it translated on language changes.
 * @template {Element} E
 * @param {E} el
 * @param {Key} key
 * @param {Params} [params]
 * @returns {E}
 */
export function bind(el, key, params) {
  el.setAttribute('data-i18n', key);
  if (params) el.setAttribute('data-i18n-params', JSON.stringify(params));
  else el.removeAttribute('data-i18n-params');
  el.removeAttribute('data-i18n-fr');
  el.removeAttribute('data-i18n-en');
  el.textContent = t(key, params);
  return el;
}

/**
 * Sets an attribute (aria-label, title, placeholder…) from a key, kept translated.
 * @template {Element} E
 * @param {E} el
 * @param {string} attr
 * @param {Key} key
 * @param {Params} [params]
 * @returns {E}
 */
export function bindAttr(el, attr, key, params) {
  /** @type {Record<string, [string, Params | undefined]>} */
  const map = JSON.parse(el.getAttribute('data-i18n-attr') ?? '{}');
  map[attr] = [key, params];
  el.setAttribute('data-i18n-attr', JSON.stringify(map));
  el.setAttribute(attr, t(key, params));
  return el;
}

/**
 * Sets an element's text from a server-given French/English pair (refusals), kept translated.
 * @template {Element} E
 * @param {E} el
 * @param {string} textFr
 * @param {string} textEn
 * @returns {E}
 */
export function bindPair(el, textFr, textEn) {
  el.removeAttribute('data-i18n');
  el.setAttribute('data-i18n-fr', textFr);
  el.setAttribute('data-i18n-en', textEn);
  el.textContent = lang === 'fr' ? textFr : textEn;
  return el;
}

/** Retranslates every bound element under `root`. @param {ParentNode} root */
export function translateTree(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    const key = el.getAttribute('data-i18n') ?? '';
    const params = el.getAttribute('data-i18n-params');
    if (isKey(key)) el.textContent = t(key, params ? JSON.parse(params) : undefined);
  }
  for (const el of root.querySelectorAll('[data-i18n-fr]')) {
    el.textContent = el.getAttribute(lang === 'fr' ? 'data-i18n-fr' : 'data-i18n-en') ?? '';
  }
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    /** @type {Record<string, [string, Params | undefined]>} */
    const map = JSON.parse(el.getAttribute('data-i18n-attr') ?? '{}');
    for (const [attr, [key, params]] of Object.entries(map)) {
      if (isKey(key)) el.setAttribute(attr, t(key, params));
    }
  }
}

function locale() {
  return lang === 'fr' ? 'fr-FR' : 'en-GB';
}

/** @param {string | Date} when @returns {string} e.g. "mardi 24 novembre 2026" */
export function fmtDate(when) {
  const d = typeof when === 'string' ? new Date(when) : when;
  return new Intl.DateTimeFormat(locale(), { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(d);
}

/** A calendar date (YYYY-MM-DD) without a time zone shift. @param {string} ymd */
export function fmtDay(ymd) {
  const [y, m, d] = ymd.split('-').map(Number);
  return new Intl.DateTimeFormat(locale(), { day: 'numeric', month: 'long', year: 'numeric' }).format(new Date(y, m - 1, d));
}

/** @param {string | Date} when @returns {string} e.g. "14:30" */
export function fmtTime(when) {
  const d = typeof when === 'string' ? new Date(when) : when;
  return new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit' }).format(d);
}

/** @param {string | Date} when */
export function fmtDateTime(when) {
  const d = typeof when === 'string' ? new Date(when) : when;
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'short', timeStyle: 'medium' }).format(d);
}

/** @param {number} seconds @returns {string} e.g. "12 min 05 s" */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
  if (h > 0) return `${h} h ${pad(m)} min ${pad(r)} s`;
  if (m > 0) return `${m} min ${pad(r)} s`;
  return `${r} s`;
}

/** @param {number} n */
export function fmtNumber(n) {
  return new Intl.NumberFormat(locale()).format(n);
}

/** A ratio in [0, 1] as a percentage number, at most one decimal: 0.35 -> "35", 0.2041 -> "20,4". @param {number} ratio */
export function fmtPercent(ratio) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(ratio * 100);
}

/** @param {number} cents @returns {string} e.g. "32,50 €" */
export function fmtEuros(cents) {
  return new Intl.NumberFormat(locale(), { style: 'currency', currency: 'EUR' }).format(cents / 100);
}

/**
 * A button that switches French <-> English. Its own text is in the other language on purpose.
 * @returns {HTMLButtonElement}
 */
export function langSwitch() {
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'lang-switch';
  const render = () => {
    btn.textContent = t('lang.switch');
    btn.setAttribute('lang', lang === 'fr' ? 'en' : 'fr');
    btn.setAttribute('aria-label', t('lang.switch.label'));
  };
  render();
  onLangChange(render);
  btn.addEventListener('click', () => setLang(lang === 'fr' ? 'en' : 'fr'));
  return btn;
}

document.documentElement.lang = lang;
